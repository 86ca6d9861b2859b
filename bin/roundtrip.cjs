#!/usr/bin/env node
// The installed `roundtrip` command: registers tsx's TypeScript loader and runs the CLI source.
require('tsx/cjs');
require('./roundtrip.ts');
