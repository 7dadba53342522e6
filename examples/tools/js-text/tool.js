// A Caxton tool server in JavaScript. Each tool is an exported function: it receives the tool's
// arguments (already checked against input_schema) and returns its output — a string as is,
// anything else as JSON. Throwing an Error fails the call with that message.
//
// The only capabilities are on the global `caxton` object, and only those the manifest asks for
// and the operator grants: caxton.log, caxton.config, caxton.vars (always), caxton.files (a path
// root granted), caxton.http (hosts granted), caxton.sqlite (a database granted).

export function stats({ text }) {
  return {
    chars: [...text].length,
    words: text.split(/\s+/).filter((w) => w.length > 0).length,
    lines: text === '' ? 0 : text.split('\n').length - (text.endsWith('\n') ? 1 : 0),
  };
}

export function slugify({ title }) {
  caxton.vars.set('slugify_calls', String(Number(caxton.vars.get('slugify_calls') ?? '0') + 1));
  return title
    .normalize('NFKD')
    .replace(/[\u0300-\u036f]/g, '')
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, '-')
    .replace(/^-+|-+$/g, '');
}

export function read_file({ path }) {
  if (!caxton.files) throw new Error('file access is not granted: map /data in [tools.js-text.paths]');
  caxton.log.debug('reading', path);
  return caxton.files.read(path);
}

export function calls() {
  return { slugify: Number(caxton.vars.get('slugify_calls') ?? '0') };
}
