"""Byte-accurate simulators of the sensors sensorpipe reads, and fleets of simulated devices.

Drivers are tested by talking to these through the same interfaces as the real hardware: a
serial port (a pty) for UART sensors (`sds011`, `pms5003`, `sps30_uart`: the SPS30's SHDLC)
and an smbus2-shaped bus (`i2c`) for I2C sensors (`bme280`; `sht`: SHT3x/SHT4x; `ads1115`:
the ADC with capacitive soil probes; `sensirion`: the SPS30, SCD30 and SCD4x with their
faults), and a sysfs-like folder for the 1-Wire DS18B20 (`ds18b20`: w1_slave files as the
kernel's w1_therm writes them). `fleet` runs simulated Pis with the real edge agent, their
sensors measuring `environment` (a deterministic street climate);
`faults` is a misbehaving device, and `history` writes synthetic days straight into InfluxDB.
For counting: `scenes` (synthetic street frames with their true crossings), `conditions`
(making them look more like a real street), `camera` (a frame source filming them) and
`count_eval` (`sensorpipe count-eval`: the counter against that truth). Only tests, benchmarks,
the demo and the `sim` and `count-eval` commands import it.
"""
