// Where the plugin writes. Commands take this instead of touching process.stdout, so tests can run a
// command in-process and read exactly what a person would see.
export interface Io {
  out(text: string): void;
  err(text: string): void;
  /** Progress is redrawn in place on a terminal and printed as plain lines otherwise. */
  errIsTTY: boolean;
}

export const processIo: Io = {
  out: (text) => void process.stdout.write(text),
  err: (text) => void process.stderr.write(text),
  errIsTTY: process.stderr.isTTY === true,
};
