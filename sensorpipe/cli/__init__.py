"""The `sensorpipe` command: one module per command group.

`entry` starts the command (`edge run` without click, everything else with it) and `main` lists
the groups, each imported only when used; `common` holds what they share (the stack directory
option, one-line errors). The groups: `stack`, `demo`, `devices` (with `ttn_setup`, what
`devices add-kit ttn` prints), `edge`, `ingest`, `gateway`, `serve`, `server` (`server setup`),
`sim`, `query`, `counting` (`count-video`, `count-eval`), `config` (the example files) and
`importing` (`sensorpipe import`).
"""
