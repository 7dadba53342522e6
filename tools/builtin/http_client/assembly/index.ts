// Built-in tool server "http_client": HTTP requests through the sandbox's HTTP host function, only
// to hosts both the manifest (`*`) and the operator allow. Tools `request` and `get`.
// Redirects are not followed (a 3xx comes back with its `location` header); a refused host, a
// network failure or the deadline ends the call with a clear error from the host.
import { Builder, JValue, K, quote } from "../../shared/json";
import { args, fail, Http, output } from "../../shared/tool";

const METHODS: Array<string> = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"];

/** Why `url` is not an absolute http(s) URL with a host, or "" when it is. */
function urlProblem(url: string): string {
  const lower = url.toLowerCase();
  let rest = "";
  if (lower.startsWith("http://")) rest = url.substring(7);
  else if (lower.startsWith("https://")) rest = url.substring(8);
  else return "\"url\" must be an absolute http:// or https:// URL, not " + quote(url);
  if (rest.length == 0 || rest.charCodeAt(0) == 0x2f || rest.charCodeAt(0) == 0x3f || rest.charCodeAt(0) == 0x23) {
    return "\"url\" has no host name: " + quote(url);
  }
  for (let i = 0; i < url.length; i++) {
    const c = url.charCodeAt(i);
    if (c <= 0x20 || c == 0x7f) return "\"url\" contains a space or control character (percent-encode it): " + quote(url);
  }
  return "";
}

/** A header name is an RFC 9110 token. */
function isToken(s: string): bool {
  if (s.length == 0) return false;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    const ok = (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x5a) || (c >= 0x61 && c <= 0x7a) || "!#$%&'*+-.^_`|~".includes(String.fromCharCode(c));
    if (!ok) return false;
  }
  return true;
}

/** Runs the request described by `a` (already checked against the input schema by Caxton). */
function run(a: JValue, fixedMethod: string): i32 {
  const url = a.getString("url");
  const bad = urlProblem(url);
  if (bad.length > 0) return fail(bad);

  let method = fixedMethod;
  if (method.length == 0) {
    method = a.getString("method", "GET").toUpperCase();
    if (!METHODS.includes(method)) return fail("\"method\" must be one of " + METHODS.join(", ") + ", not " + quote(a.getString("method")));
  }

  // Headers: a JSON object of strings, forwarded as given.
  const h = new Builder().add("{");
  let hasContentType = false;
  const headers = a.get("headers");
  if (headers != null && headers.kind != K.Null) {
    if (headers.kind != K.Obj) return fail("\"headers\" must be an object of header names to string values");
    const keys = headers.keys!;
    for (let i = 0; i < keys.length; i++) {
      const name = keys[i];
      const v = headers.vals![i];
      if (!isToken(name)) return fail("\"headers\": " + quote(name) + " is not a valid header name");
      if (v.kind != K.Str) return fail("\"headers." + name + "\" must be a string");
      if (v.s.includes("\r") || v.s.includes("\n")) return fail("\"headers." + name + "\" must not contain line breaks");
      if (name.toLowerCase() == "content-type") hasContentType = true;
      h.add(i > 0 ? "," : "").add(quote(name)).add(":").add(quote(v.s));
    }
  }

  // Body: text as given, or any JSON value serialized (with a JSON content type unless one is set).
  let body: string | null = null;
  const text = a.get("body");
  const json = a.get("json");
  if (text != null && text.kind != K.Null) {
    if (text.kind != K.Str) return fail("\"body\" must be a string (use \"json\" to send a JSON value)");
    body = text.s;
  }
  if (json != null && json.kind != K.Null) {
    if (body != null) return fail("give either \"body\" (text) or \"json\" (a JSON value), not both");
    body = json.stringify();
    if (!hasContentType) {
      h.add(h.length > 1 ? "," : "").add('"content-type":"application/json"');
    }
  }
  if (body != null && (method == "GET" || method == "HEAD")) return fail("\"body\" and \"json\" cannot be sent with " + method + " (use POST, PUT or PATCH)");
  h.add("}");

  const res = Http.request(method, url, h.toString(), body);
  const out = new Builder();
  out.add('{"status":').add(res.status.toString());
  out.add(',"ok":').add(res.status >= 200 && res.status < 300 ? "true" : "false");
  out.add(',"headers":').add(res.headers);
  out.add(',"body":').add(quote(res.text()));
  out.add("}");
  output(out.toString());
  return 0;
}

/**
 * Tool `request`: {"url", "method"?: "GET", "headers"?: {...}, "body"?: "text" | "json"?: any} →
 * {"status", "ok", "headers": {...}, "body": "text"}.
 */
export function request(): i32 {
  return run(args(), "");
}

/** Tool `get`: {"url", "headers"?: {...}} → like `request` with method GET. */
export function get(): i32 {
  return run(args(), "GET");
}
