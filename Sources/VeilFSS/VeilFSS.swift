// VeilFSS owns function secret sharing: the AES PRG, DPF/DCF keys, gates on masked wires, key formats.
