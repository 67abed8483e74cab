#!/usr/bin/env node
"use strict";
// Compiled by `npm ci` / `npm run build` (the package's prepare script).
require("../dist/src/cli/main.js").run();
