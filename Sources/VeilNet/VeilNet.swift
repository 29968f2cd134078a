// VeilNet owns channels between parties: in-memory pairs and TCP with mutual TLS, with byte and round counters.
