// Time limit of one e2e test: real servers and real synth take longer than jest's 5 s default.
jest.setTimeout(300_000);
