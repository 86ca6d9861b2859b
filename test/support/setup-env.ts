// Runs in every jest worker before the tests. jsforce honours HTTP(S)_PROXY and ignores
// NO_PROXY (salesforce-wire.md): loopback calls to the emulators must never go to a proxy.
for (const name of ['HTTP_PROXY', 'HTTPS_PROXY', 'http_proxy', 'https_proxy']) delete process.env[name];
