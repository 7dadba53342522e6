export { openDatabase, migrate, type Db, type Migration } from './database.js';
