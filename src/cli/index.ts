export { ApiClient, ApiError, DEFAULT_SERVER_URL } from './client.js';
export { CliError, EXIT } from './errors.js';
