// Built-in tool server "filesystem": read, write and list text files under the roots the operator
// maps: "/data" (read and write) and "/readonly" (read only). Tools `read`, `write`, `list`.
// Every path is checked by the host (src/tools/servers/fs-access.ts): it must lie under a mapped
// root; "..", paths outside the roots and symlinks leading out of a root are refused, and the
// refusal ends the call with a clear error. This module adds checks of the arguments' shape.
import { Builder, quote } from "../../shared/json";
import { args, fail, Files, output } from "../../shared/tool";

/** Why `path` (the argument `field`) is not a usable guest path, or "" when it is. */
function pathProblem(path: string, field: string): string {
  if (path.length == 0) return "\"" + field + "\" must not be empty; give an absolute path under /data or /readonly, e.g. \"/data/notes.txt\"";
  if (path.includes("\0")) return "\"" + field + "\" contains a NUL character";
  if (path.charCodeAt(0) != 0x2f) return "\"" + field + "\" must be an absolute path under /data or /readonly (e.g. \"/data/" + path + "\"), not " + quote(path);
  return "";
}

/** Whether directory listing `names` (a JSON array text from the host) holds `name`. */
function listed(names: string, name: string): bool {
  return names.includes(quote(name));
}

function dirOf(path: string): string {
  let end = path.length;
  while (end > 1 && path.charCodeAt(end - 1) == 0x2f) end--;
  const slash = path.lastIndexOf("/", end - 1);
  return slash <= 0 ? "/" : path.substring(0, slash);
}

function baseOf(path: string): string {
  let end = path.length;
  while (end > 1 && path.charCodeAt(end - 1) == 0x2f) end--;
  return path.substring(path.lastIndexOf("/", end - 1) + 1, end);
}

/** Tool `read`: {"path"} → {"path", "content", "bytes"} (the file as UTF-8 text). */
export function read(): i32 {
  const a = args();
  const path = a.getString("path");
  const bad = pathProblem(path, "path");
  if (bad.length > 0) return fail(bad);
  const content = Files.read(path);
  const b = new Builder();
  b.add('{"path":').add(quote(path)).add(',"content":').add(quote(content)).add(',"bytes":').add(String.UTF8.byteLength(content).toString()).add("}");
  output(b.toString());
  return 0;
}

/**
 * Tool `write`: {"path", "content", "append"?: false} → {"path", "bytes", "created"}. Creates or
 * replaces the file (the directory must exist); with append, adds to the end of an existing file.
 */
export function write(): i32 {
  const a = args();
  const path = a.getString("path");
  const bad = pathProblem(path, "path");
  if (bad.length > 0) return fail(bad);
  if (path.endsWith("/")) return fail("\"path\" names a directory (it ends with \"/\"); give a file name, e.g. " + quote(path + "notes.txt"));
  const content = a.get("content");
  if (content == null || !content.isStr) return fail("\"content\" must be a string (the text to write)");
  const existed = listed(Files.list(dirOf(path)), baseOf(path));
  let text = content.s;
  if (a.getBool("append", false) && existed) text = Files.read(path) + text;
  Files.write(path, text);
  const b = new Builder();
  b.add('{"path":').add(quote(path)).add(',"bytes":').add(String.UTF8.byteLength(text).toString()).add(',"created":').add(existed ? "false" : "true").add("}");
  output(b.toString());
  return 0;
}

/** Tool `list`: {"path"} → {"path", "entries": [names, sorted]}. */
export function list(): i32 {
  const a = args();
  const path = a.getString("path");
  const bad = pathProblem(path, "path");
  if (bad.length > 0) return fail(bad);
  const names = Files.list(path);
  output('{"path":' + quote(path) + ',"entries":' + names + "}");
  return 0;
}

