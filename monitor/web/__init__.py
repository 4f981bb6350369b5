"""The live pages and their JSON API (`provmon serve`): a read-only aiohttp.web server.

Pure: `site` (what the config says of the targets), `views` (endpoints and model rows),
`history` (performance series and uptime bars), `pages` (HTML), `badge` (SVG), `security`
(listen address, credentials, response headers), `cache` (settled history kept between
requests). I/O: `read` gathers through `monitor.storage.web` and the other storage queries,
`server` is the aiohttp.web application, `process` runs it in a child process beside the
daemon. The charts and the live refresh are `static/provmon.js`, served by provmon itself.
"""
