"""The `sensorpipe` command: one module per command group.

`entry` starts the command (`edge run` without click, everything else with it) and `main` lists
the groups, each imported only when used; `common` holds what they share (the stack, one-line
errors) and `options` the click options several commands share, each written once. The
groups: `stack`, `demo`, `devices`, `edge`, `ingest`, `gateway`, `serve`, `server` (`server
setup`), `sim`, `query`, `counting` (`count-video`, `count-eval`), `config` (the example files),
`importing` (`sensorpipe import`; `import_ledger` holds its `list` and `remove`),
`calibrate` (`calibrate fit|group|update|apply|list|show|report`) `quality` (`quality
neighbours`, the neighbour outlier over stored data), `areas` (`areas add|list|show|remove`:
the areas whose crowding is measured) and `crowd` (`crowd now`; its `SUBCOMMANDS` names the
crowd commands in modules of their own: `backtest` in `crowd_backtest`, `train` and `forecast` in
`crowd_forecast`, `models` in `crowd_models`, `crowd alerts` and
`crowd alerts check` in `crowd_alerts`, `crowd alerts subscriber add|list|remove` in
`crowd_subscribers`). `calibrate` keeps `fit`, `apply`, `list`
and `show`; `calibrate_group` holds `group` and `update`, `calibrate_report` holds `report`,
and `calibrate_book` what they share (the calibration book, the period, a record described).

`devices` keeps `add`, `add-gateway`, `list` and `reset-key`; its other commands have modules
of their own: `kits` (`devices add-kit airrohr|ttn`, with `ttn_setup`, what `add-kit ttn`
prints), `quarantine` (`devices quarantine` and `lift`), `public_register` (`devices export`
and `network`) and `device_edit` (`devices edit`). `provisioning` is the one path `devices add`
and the kits share: the register options, the register fields they give and the stack's add
function with one-line refusals.
"""
