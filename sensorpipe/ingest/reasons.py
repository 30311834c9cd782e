"""Every reason the ingest gives for rejecting a message, with what it means.

The codes are short and stable: they are counted in metrics, stored with each dead letter and
used by `sensorpipe ingest rejects/replay --reason`. A test checks that every code the code
base raises is listed here.
"""

from __future__ import annotations

import difflib

REASONS: dict[str, str] = {
    "bad_topic": "published outside sensorpipe/v1/<device_id>/<kind>",
    "too_large": "payload over the size limit",
    "malformed_json": "not UTF-8 JSON, or not a JSON object",
    "unsupported_version": "a schema version this ingest does not know",
    "schema": "does not match the message schema (a field, type, unit or range)",
    "device_mismatch": "the message names another device than its topic",
    "kind_mismatch": "the message kind differs from the topic's",
    "unknown_device": "the device is not in the registry",
    "unsigned": "the message carries no signature",
    "bad_signature": "the signature does not verify with the device's key",
    "wrong_signer": "signed by someone who may not vouch for the device (a kit's gateway)",
    "no_key": "the device has not enrolled its signing key yet (`edge join`)",
    "key_taken": "a key enrollment for a device that enrolled another key (or has one)",
    "key_store": "the ingest could not write an enrolled key (its key store)",
    "future_timestamp": "observed too far in the future",
    "too_old": "observed before the backlog window",
    "undeclared_sensor": "a sensor model the registry does not declare for the device",
    "undeclared_direction": "a direction name the device's counting line does not have",
    "unstorable": "cannot be written as line protocol",
    "storage_rejected": "InfluxDB refused the write",
    "internal_error": "the ingest failed on it (a bug): kept for replay",
    # The Things Stack uplinks (the kit gateway): what can be stored of one still is.
    "unknown_field": "a TTN decoded_payload field with no mapping in the gateway's [[ttn]] config",
    "not_decoded": "a TTN uplink without decoded_payload: no payload formatter is set",
    "simulated": "a TTN uplink simulated in the console, not measured (says what it would store)",
    "conflicting_uplink": "a TTN uplink at a time handled before for its node with another "
    "f_cnt: it would overwrite the stored reading",
    # Kits' posts (the kit gateway): the rest of the post is still taken.
    "unknown_value_type": "an airrohr value type sensorpipe does not know",
    "bad_value": "a kit's value that is not a number, repeated, or outside its plausible range",
    # Rows of imported history files (`sensorpipe import`); `bad_value`, `future_timestamp`,
    # `undeclared_sensor`, `undeclared_direction` and `storage_rejected` apply to them too.
    "bad_row": "an imported row that does not fit its file's columns, or holds no value",
    "bad_timestamp": "an imported row whose time is missing or not in its format's form",
    "no_position": "an imported mobile reading without a position (no GPS fix)",
    "device_error": "an imported row its device flagged as faulty (a sensor error code)",
    "unknown_phenomenon": "an openSenseMap phenomenon or unit sensorpipe has no quantity for",
    "bad_unit": "an imported reference value in a unit sensorpipe cannot convert",
    "duplicate": "an imported row of a device and time read before in the same import "
    "(counts from a CSV): the first is stored",
    "qc_invalid": "a reference station's value its agency marks invalid (QC code, validity)",
}


def check_reason(code: str) -> str | None:
    """None when `code` is a known reason, else a sentence saying which ones are."""
    if code in REASONS:
        return None

    close = difflib.get_close_matches(code, list(REASONS), n=1)
    hint = f"did you mean {close[0]!r}? " if close else ""
    return f"unknown reason {code!r}: {hint}known reasons: {', '.join(sorted(REASONS))}"
