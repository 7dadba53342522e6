/** The console's entry: the shell (layout, sign-in, routing); each page is its own chunk (pages.ts). */
import { render } from 'preact';
import { App } from './app';
import { restoreSession } from './session';
import { finishSso, isSsoCallback } from './sso';
import './styles.css';
import './flow.css';

const root = document.getElementById('app');
if (root) {
  render(<App />, root);
  void (isSsoCallback() ? finishSso() : restoreSession());
}
