// PGlite's file sizes, kept in memory (docs/performance.md, "PGlite file sizes").
//
// PostgreSQL learns how many blocks a table or index has with lseek(fd, 0, SEEK_END) (smgrnblocks):
// for every statement it plans (each relation and index the planner sizes), every sequential scan
// it starts and every insert that looks for room at the end. PGlite's node filesystem (Emscripten's
// NODEFS) answers each such lseek with an fstat system call, a large part of a PGlite service's
// CPU in planning and scans. A PGlite data directory belongs to one process, and
// every change to a file's length made by that process goes through two operations of this
// filesystem: write (which can only lengthen a file) and setattr (truncate, ftruncate). So the
// length of a file, once asked for, is kept on its filesystem node, grown by each write past it
// and dropped by any setattr; the next lseek after a drop asks the file system again.
//
// A node is the file, not a descriptor: every descriptor open on one path shares it, and rename
// and unlink move or destroy it with the file, so a length cannot outlive its file.

/** The parts of Emscripten's NODEFS this touches. */
interface NodeFs {
  stream_ops: StreamOps & { [PATCHED]?: true };
  node_ops: { setattr(node: FsNode, attr: unknown): void };
}
interface StreamOps {
  llseek(stream: Stream, offset: number, whence: number): number;
  write(stream: Stream, buffer: unknown, offset: number, length: number, position?: number): number;
  setattr(stream: Stream, attr: unknown): void;
}
interface FsNode {
  mode: number;
  [SIZE]?: number;
}
interface Stream {
  node: FsNode;
}

const PATCHED = Symbol("stratus.sizes");
const SIZE = Symbol("stratus.size");
const SEEK_END = 2;
const S_IFMT = 0o170000;
const S_IFREG = 0o100000;

/**
 * Keeps file lengths in memory for the NODEFS of one PGlite instance (its Emscripten module).
 * Returns false, changing nothing, when that module does not have the expected shape (another
 * PGlite version): PGlite then works as it did, at its own cost.
 */
export function cacheFileSizes(module: unknown): boolean {
  const nodefs = (module as { NODEFS?: NodeFs } | undefined)?.NODEFS;
  const ops = nodefs?.stream_ops;
  if (
    !nodefs ||
    !ops ||
    typeof ops.llseek !== "function" ||
    typeof ops.write !== "function" ||
    typeof ops.setattr !== "function" ||
    typeof nodefs.node_ops?.setattr !== "function"
  ) {
    return false;
  }
  if (ops[PATCHED]) return true;
  const { llseek, write, setattr } = ops;
  const nodeSetattr = nodefs.node_ops.setattr;

  ops.llseek = function (stream, offset, whence) {
    const node = stream.node;
    if (whence !== SEEK_END || (node.mode & S_IFMT) !== S_IFREG) {
      return llseek.call(this, stream, offset, whence);
    }
    let size = node[SIZE];
    if (size === undefined) {
      size = llseek.call(this, stream, 0, SEEK_END);
      node[SIZE] = size;
    }
    // A position before the start: the original raises the error (EINVAL).
    return size + offset < 0 ? llseek.call(this, stream, offset, whence) : size + offset;
  };
  ops.write = function (stream, buffer, offset, length, position) {
    const node = stream.node;
    try {
      const written = write.call(this, stream, buffer, offset, length, position);
      const size = node[SIZE];
      if (size !== undefined) {
        if (typeof position === "number") node[SIZE] = Math.max(size, position + written);
        else delete node[SIZE];
      }
      return written;
    } catch (err) {
      delete node[SIZE]; // a partial write may have lengthened the file
      throw err;
    }
  };
  ops.setattr = function (stream, attr) {
    try {
      return setattr.call(this, stream, attr);
    } finally {
      delete stream.node[SIZE];
    }
  };
  nodefs.node_ops.setattr = function (node, attr) {
    try {
      return nodeSetattr.call(this, node, attr);
    } finally {
      delete node[SIZE];
    }
  };
  ops[PATCHED] = true;
  return true;
}
