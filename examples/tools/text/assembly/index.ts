// Example Caxton tool server "text", written in AssemblyScript with Extism's PDK and Caxton's
// SDK (templates/tool-assemblyscript/assembly/caxton.ts). Built by `npm run build:tools`.
import { Host } from "@extism/as-pdk";
import { fail, Files, input, Json, output } from "../../../../templates/tool-assemblyscript/assembly/caxton";

/** Tool `echo`: returns its arguments unchanged (the benchmark's trivial tool). */
export function echo(): i32 {
  Host.output(Host.input());
  return 0;
}

/** Tool `stats`: {"text": "..."} → {"chars", "words", "lines"} */
export function stats(): i32 {
  const text = Json.parse(input()).getString("text");
  let words = 0;
  let lines = text.length > 0 ? 1 : 0;
  let inWord = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c == 0x0a) lines++;
    const space = c == 0x20 || c == 0x0a || c == 0x0d || c == 0x09;
    if (!space && !inWord) words++;
    inWord = !space;
  }
  output('{"chars":' + text.length.toString() + ',"words":' + words.toString() + ',"lines":' + lines.toString() + "}");
  return 0;
}

/** Tool `read_file`: {"path": "/data/notes.txt"} → the file's text. */
export function read_file(): i32 {
  const path = Json.parse(input()).getString("path");
  if (path.length == 0) return fail("argument \"path\" is required");
  output(Files.read(path));
  return 0;
}
