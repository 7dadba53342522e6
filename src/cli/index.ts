export { ApiClient, ApiError, DEFAULT_SERVER_URL } from './api-client.js';
export { CliError, EXIT } from './errors.js';
