/** Types of size.mjs, for the size test. */
export declare const WEBSOCKET_BUDGET: number;
export declare function measure(entry: string): Promise<{ minified: number; gzip: number; packages: string[] }>;
