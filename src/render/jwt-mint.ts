/**
 * One-liners that mint a test JWT for the project's jwt routes: init prints the Node one, the
 * generated README shows both.
 */

/**
 * Node code that prints an HS256 token valid for an hour, signed with the key given as its argument.
 * Single quotes only: the line init prints wraps it in double quotes.
 */
export const MINT_ONE_LINER =
  "const c=require('crypto'),k=process.argv[1],b=(o)=>Buffer.from(JSON.stringify(o)).toString('base64url'),n=Math.floor(Date.now()/1000),u=b({alg:'HS256',typ:'JWT'})+'.'+b({sub:'me',iat:n,exp:n+3600});console.log(u+'.'+c.createHmac('sha256',k).update(u).digest('base64url'))"

/** The same in Python, standard library only. Double quotes only: the README wraps it in single quotes. */
export const MINT_PYTHON_ONE_LINER =
  'import base64,hashlib,hmac,json,sys,time; e=lambda b: base64.urlsafe_b64encode(b).rstrip(b"=").decode(); j=lambda o: e(json.dumps(o).encode()); n=int(time.time()); u=j({"alg":"HS256","typ":"JWT"})+"."+j({"sub":"me","iat":n,"exp":n+3600}); print(u+"."+e(hmac.new(sys.argv[1].encode(),u.encode(),hashlib.sha256).digest()))'
