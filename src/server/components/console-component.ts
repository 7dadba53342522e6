import { consoleApi } from '../../api/index.js';
import type { Component } from './component.js';

/** The web console at /ui: its built files, read once; nothing to close. */
export function serveConsole(opts: { dir?: string }): Component {
  return { name: 'console', routes: consoleApi(opts) };
}
