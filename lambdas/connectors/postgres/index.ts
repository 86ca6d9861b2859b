/**
 * The PostgreSQL connector: pool and TLS, error classification, state-schema migrations,
 * and the loader pieces (types, DDL, COPY into staging, merge, watermarks).
 */
export * from './errors';
export * from './pool';
export * from './session';
export * from './migrations';
export * from './types';
export * from './ddl';
export * from './copy';
export * from './merge';
export * from './watermark';
export * from './load';
