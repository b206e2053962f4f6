/** Makes process.stdout and process.stderr blocking as each is first made (see blocking-stdio.cjs). */
export declare function blockingStdio(): void;
