export { startServer, type CaxtonServer, type StartOptions } from './server.js';
