/**
 * Where a long step says what it is doing, one line at a time in the user's words ("Creating
 * demo-web-2"); the commands print them on stderr, tests collect them. Everything that reports
 * progress takes this one type.
 */
export type Progress = (message: string) => void
