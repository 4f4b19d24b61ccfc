"""Pure detectors: text in, findings out. No aiohttp, no I/O, no config objects."""
