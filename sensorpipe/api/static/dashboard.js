/* The sensorpipe dashboard: a map and list of the devices in the public register, and for a
 * chosen device or site its charts and register entry. It reads only the service's own
 * public API (relative URLs) and, when one is configured, a tile server for the map.
 * Text from the register is always inserted as text, never as HTML.
 */
(function () {
  "use strict";

  // European Air Quality Index bands for PM2.5 (µg/m³); a value on a boundary belongs to
  // the lower band.
  const BANDS = [
    { max: 10, key: "good", label: "good", range: "0–10" },
    { max: 20, key: "fair", label: "fair", range: "10–20" },
    { max: 25, key: "moderate", label: "moderate", range: "20–25" },
    { max: 50, key: "poor", label: "poor", range: "25–50" },
    { max: 75, key: "very-poor", label: "very poor", range: "50–75" },
    { max: Infinity, key: "extremely-poor", label: "extremely poor", range: "over 75" },
  ];
  // A latest reading older than this is not coloured: it says nothing about the air now.
  const STALE_MS = 3 * 3600 * 1000;
  // Every quantity of sensorpipe.protocol.quantities (and those announced for it): its label,
  // unit, decimals and the chart it is drawn on (tests/test_dashboard_quantities.py keeps the
  // table whole). /api/v1/air holds every environmental quantity, soil and CO₂ included. A
  // quantity not in the table still gets a chart of its own (`quantityInfo`).
  const QUANTITIES = {
    pm1: { label: "PM1", unit: "µg/m³", digits: 1, chart: "pm" },
    pm2_5: { label: "PM2.5", unit: "µg/m³", digits: 1, chart: "pm" },
    pm4: { label: "PM4", unit: "µg/m³", digits: 1, chart: "pm" },
    pm10: { label: "PM10", unit: "µg/m³", digits: 1, chart: "pm" },
    temperature: { label: "Temperature", unit: "°C", digits: 1, chart: "temperature" },
    relative_humidity: { label: "Relative humidity", unit: "%", digits: 0, chart: "humidity" },
    pressure: { label: "Air pressure", unit: "hPa", digits: 1, chart: "pressure" },
    no2: { label: "NO₂", unit: "µg/m³", digits: 1, chart: "no2" },
    co2: { label: "CO₂", unit: "ppm", digits: 0, chart: "co2" },
    noise: { label: "Sound level", unit: "dB(A)", digits: 1, chart: "noise" },
    soil_moisture: { label: "Soil moisture", unit: "%", digits: 0, chart: "soil" },
    soil_probe_voltage: { label: "Soil probe voltage", unit: "V", digits: 3, chart: "soil-voltage" },
    soil_temperature: { label: "Soil temperature", unit: "°C", digits: 1, chart: "soil-temperature" },
    // Plantower counts: particles LARGER than the size, per cm³ ...
    particles_0_3: { label: "> 0.3 µm", unit: "per cm³", digits: 2, chart: "particles" },
    particles_0_5: { label: "> 0.5 µm", unit: "per cm³", digits: 2, chart: "particles" },
    particles_1_0: { label: "> 1 µm", unit: "per cm³", digits: 2, chart: "particles" },
    particles_2_5: { label: "> 2.5 µm", unit: "per cm³", digits: 2, chart: "particles" },
    particles_5_0: { label: "> 5 µm", unit: "per cm³", digits: 2, chart: "particles" },
    particles_10: { label: "> 10 µm", unit: "per cm³", digits: 2, chart: "particles" },
    // ... the SPS30's number concentrations: particles SMALLER than the size (0.3 µm up), a
    // chart of their own so that the two are never read as one series.
    number_pm0_5: { label: "< 0.5 µm", unit: "per cm³", digits: 2, chart: "numbers" },
    number_pm1: { label: "< 1 µm", unit: "per cm³", digits: 2, chart: "numbers" },
    number_pm2_5: { label: "< 2.5 µm", unit: "per cm³", digits: 2, chart: "numbers" },
    number_pm4: { label: "< 4 µm", unit: "per cm³", digits: 2, chart: "numbers" },
    number_pm10: { label: "< 10 µm", unit: "per cm³", digits: 2, chart: "numbers" },
    particle_size_typical: { label: "Typical particle size", unit: "µm", digits: 2, chart: "size" },
  };
  // The charts, in the order they are shown; `caption` gets the labels of the quantities on it.
  const CHARTS = {
    pm: { unit: "µg/m³", digits: 1, caption: (labels) => `Fine dust: ${listed(labels)} (µg/m³)` },
    particles: { unit: "per cm³", digits: 2, caption: () => "Particle counts: particles larger than each size, per cm³" },
    numbers: { unit: "per cm³", digits: 2, caption: () => "Particle number concentrations: particles smaller than each size (from 0.3 µm), per cm³" },
    size: { unit: "µm", digits: 2, caption: () => "Typical particle size (µm)" },
    temperature: { unit: "°C", digits: 1, caption: () => "Temperature (°C)" },
    humidity: { unit: "%", digits: 0, caption: () => "Relative humidity (%)" },
    pressure: { unit: "hPa", digits: 1, caption: () => "Air pressure (hPa)" },
    co2: { unit: "ppm", digits: 0, caption: () => "Carbon dioxide, CO₂ (ppm)" },
    no2: { unit: "µg/m³", digits: 1, caption: () => "Nitrogen dioxide, NO₂ (µg/m³)" },
    noise: { unit: "dB(A)", digits: 1, caption: () => "Sound level (dB(A))" },
    soil: { unit: "%", digits: 0, caption: () => "Soil moisture (% of each probe's dry-to-wet calibration span; not volumetric water content unless calibrated in soil)" },
    "soil-temperature": { unit: "°C", digits: 1, caption: () => "Soil temperature (°C)" },
    "soil-voltage": { unit: "V", digits: 3, caption: () => "Soil probe output voltage (V; lower is wetter)" },
  };
  // The most quantities /api/v1/air takes in one request (its `quantity` parameter).
  const MAX_QUANTITIES_PER_REQUEST = 20;
  // Units as the API writes them (protocol.quantities), as a reader reads them.
  const UNIT_TEXT = { "ug/m3": "µg/m³", degC: "°C", "1/cm3": "per cm³", dBA: "dB(A)", um: "µm" };

  /** A quantity's label, unit, decimals and chart; one not in the table is labelled by its
   * name and the unit the API gives for it (`units`), on a chart of its own. */
  function quantityInfo(q, units) {
    if (QUANTITIES[q]) return QUANTITIES[q];
    const unit = units && units[q] ? UNIT_TEXT[units[q]] || units[q] : "";
    const name = q.replaceAll("_", " ");
    return { label: name.charAt(0).toUpperCase() + name.slice(1), unit, digits: 2, chart: `q-${q.replace(/[^a-z0-9_]/gi, "")}` };
  }

  function listed(labels) {
    return labels.length < 2 ? labels.join("") : `${labels.slice(0, -1).join(", ")} and ${labels[labels.length - 1]}`;
  }

  /** The charts for `quantities` (in the table's order, unknown ones last): name -> {caption,
   * unit, digits, quantities}; each figure made if it is not there yet. */
  function chartsFor(quantities, units) {
    const known = Object.keys(QUANTITIES);
    const ordered = [...quantities].sort((a, b) => {
      const ia = known.indexOf(a), ib = known.indexOf(b);
      return (ia < 0 ? 999 : ia) - (ib < 0 ? 999 : ib) || a.localeCompare(b);
    });
    const charts = new Map();
    for (const q of ordered) {
      const info = quantityInfo(q, units);
      if (!charts.has(info.chart)) {
        const def = CHARTS[info.chart];
        charts.set(info.chart, {
          unit: def ? def.unit : info.unit,
          digits: def ? def.digits : info.digits,
          caption: def ? def.caption : () => (info.unit ? `${info.label} (${info.unit})` : info.label),
          quantities: [],
        });
      }
      charts.get(info.chart).quantities.push(q);
    }
    const order = Object.keys(CHARTS);
    const names = [...charts.keys()].sort((a, b) => {
      const ia = order.indexOf(a), ib = order.indexOf(b);
      return (ia < 0 ? 999 : ia) - (ib < 0 ? 999 : ib);
    });
    return new Map(names.map((n) => [n, charts.get(n)]));
  }

  /** The charts' names in batches whose quantities, together, the API takes in one request
   * (/api/v1/air: at most MAX_QUANTITIES_PER_REQUEST); a chart is never split. */
  function airBatches(charts) {
    const batches = [];
    let batch = [], size = 0;
    for (const [name, chart] of charts) {
      const n = chart.quantities.length;
      if (batch.length && size + n > MAX_QUANTITIES_PER_REQUEST) {
        batches.push(batch);
        batch = [];
        size = 0;
      }
      batch.push(name);
      size += n;
    }
    if (batch.length) batches.push(batch);
    return batches;
  }

  /** The figure of an air chart, made once, before the counts chart; its caption set. */
  function airFigure(name, chart) {
    let fig = $(`chart-${name}`);
    if (!fig) {
      const caption = el("figcaption");
      const plot = el("div", { class: "plot", role: "img" });
      fig = el("figure", { class: "chart", id: `chart-${name}`, "data-kind": "air" },
        caption, plot, el("p", { class: "chart-summary note" }));
      fig.hidden = true;
      $("chart-counts").before(fig);
    }
    const labels = chart.quantities.map((q) => quantityInfo(q).label);
    const text = chart.caption(labels);
    fig.querySelector("figcaption").textContent = text;
    fig.querySelector(".plot").setAttribute("aria-label", `Chart of ${text}`);
    return fig;
  }

  const CLASS_LABEL = {
    pedestrian: "Pedestrians", cyclist: "Cyclists", car: "Cars",
    motorcycle: "Motorcycles", heavy_vehicle: "Heavy vehicles",
  };
  const PALETTE = ["#0b5cad", "#d95f02", "#1b9e77", "#7570b3", "#e7298a", "#66a61e",
    "#a6761d", "#444444"];
  const EVERY = [["1m", 60], ["5m", 300], ["10m", 600], ["30m", 1800], ["1h", 3600],
    ["3h", 10800], ["6h", 21600], ["12h", 43200], ["1d", 86400]];
  const MAX_POINTS_PER_LINE = 600;
  // What "indicative" means, in one sentence (charts, map popups, the legend).
  const INDICATIVE_TEXT = "Indicative: the value of a low-cost sensor that no calibration " +
    "against a reference station has corrected; it shows changes over time well, but its " +
    "level may be further off than a calibrated value. In fog (98 % humidity or more) a " +
    "calibrated value is indicative too: calibration does not hold there.";
  const BAND_TEXT = "The shaded band around a line is each value's uncertainty (±): the error " +
    "of its calibration against the reference station, or, uncalibrated, RIVM Samen Meten's " +
    "default for PM (±5.3 µg/m³ PM2.5, ±8.5 µg/m³ PM10, or 20 % of the value where larger).";

  const $ = (id) => document.getElementById(id);
  const state = {
    register: null,
    devices: new Map(), // device_id -> register entry
    markers: new Map(), // device_id -> Leaflet marker
    listButtons: [],
    selection: null, // {kind: "device"|"site", id}
    plots: {}, // chart name -> uPlot
    units: {}, // quantity -> its unit as the API gave it (for quantities the table lacks)
    unfinished: {}, // chart name -> {from, times} of its intervals not over yet, or null
    unfinishedDrawn: {}, // chart name -> {left, right}: where it was drawn lighter (px)
    load: 0,
    flagReasons: {}, // quality flag -> the sentence that explains it (api/v1/flags)
    // device_id -> its latest PM2.5 as /api/v1/air?values=calibrated gives it:
    // {value, indicative, calibration, uncertainty}
    latestPm: new Map(),
    bands: {}, // chart name -> per main line {label, times, lower, upper, indicative}
  };
  // For tests and the curious: the charts' data and what is chosen.
  window.sensorpipeDashboard = state;

  // --- helpers -----------------------------------------------------------------------------
  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined || v === false) continue;
      if (k === "class") node.className = v;
      else if (k === "text") node.textContent = v;
      else node.setAttribute(k, v === true ? "" : String(v));
    }
    for (const c of children) {
      if (c !== null && c !== undefined) node.append(c);
    }
    return node;
  }

  function band(value) {
    if (value === null || value === undefined || Number.isNaN(value)) return null;
    return BANDS.find((b) => value <= b.max);
  }

  function freshPm(entry) {
    if (entry.latest_pm2_5 === null || entry.latest_pm2_5 === undefined) return null;
    const t = Date.parse(entry.latest_pm2_5_time || "");
    if (Number.isNaN(t) || Date.now() - t > STALE_MS) return null;
    const latest = state.latestPm.get(entry.device_id);
    return latest ? latest.value : entry.latest_pm2_5;
  }

  /** Whether the map's colour of a device is indicative: its latest PM2.5 was not
   * calibrated (a reference station's never is); without the calibrated answer, any value
   * but a reference station's. */
  function pmIndicative(entry) {
    const latest = state.latestPm.get(entry.device_id);
    if (latest) return latest.indicative === true;
    return entry.source !== "reference";
  }

  /** Each device's latest PM2.5 of the last 3 hours, calibrated where a calibration applies
   * (/api/v1/air?values=calibrated, the last reading of the interval): the map's colours. */
  async function loadLatestPm() {
    const q = new URLSearchParams({
      quantity: "pm2_5", from: new Date(Date.now() - STALE_MS).toISOString(), every: "3h",
      agg: "last", values: "calibrated",
    });
    let answer;
    try {
      answer = await fetchJSON(`api/v1/air?${q}`);
    } catch (e) {
      return; // the register's raw latest values, marked indicative
    }
    for (const s of answer.series || []) {
      const values = (s.values || {}).pm2_5 || [];
      for (let i = values.length - 1; i >= 0; i--) {
        if (values[i] === null || values[i] === undefined) continue;
        state.latestPm.set(s.device_id, {
          value: values[i],
          indicative: ((s.indicative || {}).pm2_5 || [])[i],
          calibration: ((s.calibration || {}).pm2_5 || [])[i],
          uncertainty: ((s.uncertainty || {}).pm2_5 || [])[i],
        });
        break;
      }
    }
  }

  function fmtNumber(v, digits) {
    return v.toLocaleString("en-GB", { maximumFractionDigits: digits, minimumFractionDigits: 0 });
  }

  function fmtTime(iso) {
    if (!iso) return "never";
    const d = new Date(iso);
    if (Number.isNaN(d.getTime())) return iso;
    return d.toLocaleString("en-GB", {
      year: "numeric", month: "short", day: "numeric", hour: "2-digit", minute: "2-digit",
    });
  }

  function ago(iso) {
    const t = Date.parse(iso || "");
    if (Number.isNaN(t)) return "";
    const s = Math.max(0, (Date.now() - t) / 1000);
    if (s < 90) return "just now";
    if (s < 5400) return `${Math.round(s / 60)} minutes ago`;
    if (s < 172800) return `${Math.round(s / 3600)} hours ago`;
    return `${Math.round(s / 86400)} days ago`;
  }

  // When a sensor's state began: the time alone today, the date and time before.
  function sinceText(iso) {
    const d = new Date(iso || "");
    if (Number.isNaN(d.getTime())) return "";
    const today = new Date().toDateString() === d.toDateString();
    return today
      ? d.toLocaleTimeString("en-GB", { hour: "2-digit", minute: "2-digit" })
      : fmtTime(iso);
  }

  // One line per sensor whose newest status is not ok, e.g. "BME280 not working since 10:42:
  // bme280: no answer at 0x76 (errors: 12 io; tried every 10 min)" (the device's own uptime
  // can be 100 % all the same).
  function sensorNotes(d) {
    return (d.sensor_health || []).filter((h) => h.ok === false).map((h) =>
      `${h.sensor.toUpperCase()} not working` + (h.since ? ` since ${sinceText(h.since)}` : "") +
      (h.last_error ? `: ${h.last_error}` : "") + faultsText(h));
  }

  // The faults the agent counted by kind, most frequent first, and its back-off.
  function faultsText(h) {
    const counts = Object.entries(h.errors || {}).filter(([, n]) => n > 0)
      .sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0]))
      .map(([kind, n]) => `${n} ${kind.replace(/_/g, " ")}`);
    const parts = counts.length ? [`errors: ${counts.join(", ")}`] : [];
    if (h.backoff_s) {
      const s = h.backoff_s;
      parts.push(`tried every ${s >= 120 ? `${Math.round(s / 60)} min` : `${Math.round(s)} s`}`);
    }
    return parts.length ? ` (${parts.join("; ")})` : "";
  }

  function sensorsText(d) {
    const health = d.sensor_health || [];
    if (!health.length) return d.state || "no sensor has reported yet";
    return health.map((h) => {
      const state = h.ok === false
        ? `NOT WORKING${h.since ? ` since ${sinceText(h.since)}` : ""}${h.last_error ? ` (${h.last_error})` : ""}`
        : h.ok ? "ok" : "no status reported";
      return `${h.sensor}: ${state}, readings in ${pct(h.uptime_24h)} of the last 24 hours`;
    }).join("; ");
  }

  function pct(v) {
    return v === null || v === undefined ? "not known" : `${fmtNumber(v * 100, 1)} %`;
  }

  function readingText(entry) {
    const pm = freshPm(entry);
    if (pm === null) {
      if (entry.latest_pm2_5 !== null && entry.latest_pm2_5 !== undefined) {
        return `PM2.5 ${fmtNumber(entry.latest_pm2_5, 1)} µg/m³ ${ago(entry.latest_pm2_5_time)}`;
      }
      return entry.counts ? "counts" : "no PM2.5 reading";
    }
    const latest = state.latestPm.get(entry.device_id);
    const how = pmIndicative(entry) ? ", indicative"
      : latest && latest.calibration && latest.calibration !== "raw" ? `, calibrated (${latest.calibration})` : "";
    return `PM2.5 ${fmtNumber(pm, 1)} µg/m³, ${band(pm).label}${how}`;
  }

  async function fetchJSON(url) {
    const response = await fetch(url, { headers: { Accept: "application/json" } });
    let body = null;
    try {
      body = await response.json();
    } catch (_e) {
      body = null;
    }
    if (!response.ok) {
      const why = body && (body.detail || body.title);
      throw new Error(why || `the service answered ${response.status}`);
    }
    return body;
  }

  function setStatus(text, isError) {
    const s = $("detail-status");
    s.textContent = text;
    s.classList.toggle("error", Boolean(isError));
  }

  // --- header, list and map ----------------------------------------------------------------
  function renderHeader(reg) {
    const n = reg.network || {};
    $("network-name").textContent = n.name || "Sensor network";
    document.title = `${n.name || "Sensor network"}: air quality and counts`;
    const about = $("network-about");
    about.textContent = "";
    const parts = [];
    if (n.operator) parts.push(`Run by ${n.operator}.`);
    if (n.contact) parts.push(`Contact: ${n.contact}.`);
    about.append(parts.join(" ") + " ");
    if (n.privacy_url && /^https?:\/\//.test(n.privacy_url)) {
      about.append(el("a", { href: n.privacy_url, text: "Privacy statement" }), ". ");
    }
    const count = reg.devices.length;
    about.append(`${count} ${count === 1 ? "device" : "devices"}`);
    if (reg.stats_computed_at) about.append(`; statistics from ${fmtTime(reg.stats_computed_at)}`);
    about.append(".");
  }

  function renderBandLegend() {
    const ul = $("band-legend");
    for (const b of BANDS) {
      ul.append(el("li", {},
        el("span", { class: `swatch air band-${b.key}`, "aria-hidden": "true" }),
        `${b.label} (${b.range})`));
    }
  }

  function bySite(devices) {
    const sites = new Map();
    for (const d of devices) {
      if (!sites.has(d.site)) sites.set(d.site, []);
      sites.get(d.site).push(d);
    }
    return new Map([...sites.entries()].sort((a, b) => a[0].localeCompare(b[0])));
  }

  function swatchClass(entry) {
    const pm = freshPm(entry);
    const b = band(pm);
    const marked = b && pmIndicative(entry) ? " indicative" : "";
    return `${entry.counts ? "count" : "air"} ${b ? `band-${b.key}` : "nodata"}${marked}`;
  }

  function renderList(devices) {
    const ul = $("sites");
    ul.textContent = "";
    state.listButtons = [];
    for (const [site, members] of bySite(devices)) {
      const inner = el("ul");
      for (const d of members) {
        const button = el("button", {
          type: "button", class: "device-button", "data-device": d.device_id,
          "aria-current": "false",
        },
        el("span", { class: `swatch ${swatchClass(d)}`, "aria-hidden": "true" }),
        el("span", { text: d.device_id }),
        el("span", { class: "reading", text: readingText(d) + (d.location ? "" : ", no location") }),
        ...(d.state ? [el("span", { class: "health", text: d.state })] : []),
        ...sensorNotes(d).map((note) => el("span", { class: "health problem", text: note })));
        button.addEventListener("click", () => select({ kind: "device", id: d.device_id }, true));
        state.listButtons.push(button);
        inner.append(el("li", {}, button));
      }
      const siteButton = el("button", {
        type: "button", class: "site-button", "data-site": site, "aria-current": "false",
      }, `Site ${site}`, el("span", {
        class: "reading", text: `${members.length} ${members.length === 1 ? "device" : "devices"}`,
      }));
      siteButton.addEventListener("click", () => select({ kind: "site", id: site }, true));
      state.listButtons.push(siteButton);
      ul.append(el("li", {}, el("h4", {}, siteButton), inner));
    }
  }

  // The configured tile attribution, built as elements: its text, with character references
  // (&copy;, &#169;) read as the characters they name, and each <a href="http(s)://...">text</a>
  // as a link of that href alone (its other attributes dropped, rel="noopener noreferrer").
  // Any other markup, a link to anything but http(s) included, is shown as the text it is.
  // The configured text is never parsed as HTML.
  const ATTRIBUTION_LINK = /<a\b([^<>]*)>([^<]*)<\/a\s*>/gi;
  const HREF = /(?:^|\s)href\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s"'=<>`]+))/i;
  const ENTITIES = {
    amp: "&", lt: "<", gt: ">", quot: '"', apos: "'", nbsp: "\u00a0", copy: "©", reg: "®",
    trade: "™", middot: "·", ndash: "–", mdash: "—", hellip: "…",
  };

  function decodeEntities(text) {
    return text.replace(/&(?:#(\d{1,7})|#[xX]([0-9a-fA-F]{1,6})|([a-zA-Z]+));/g,
      (whole, dec, hex, name) => {
        if (name !== undefined) return Object.hasOwn(ENTITIES, name) ? ENTITIES[name] : whole;
        const code = dec !== undefined ? parseInt(dec, 10) : parseInt(hex, 16);
        return code > 0 && code <= 0x10ffff && !(code >= 0xd800 && code <= 0xdfff)
          ? String.fromCodePoint(code) : whole;
      });
  }

  function webAddress(href) {
    try {
      const url = new URL(href);
      return url.protocol === "http:" || url.protocol === "https:" ? url.href : null;
    } catch (e) {
      return null;
    }
  }

  function attributionElement(text) {
    const out = document.createElement("span");
    let at = 0;
    for (const m of text.matchAll(ATTRIBUTION_LINK)) {
      const h = HREF.exec(m[1]);
      const href = h ? webAddress(decodeEntities(h[1] ?? h[2] ?? h[3]).trim()) : null;
      if (href === null) continue; // shown as text with what is around it
      out.append(decodeEntities(text.slice(at, m.index)));
      const a = document.createElement("a");
      a.href = href;
      a.rel = "noopener noreferrer";
      a.textContent = decodeEntities(m[2]);
      out.append(a);
      at = m.index + m[0].length;
    }
    out.append(decodeEntities(text.slice(at)));
    return out;
  }

  function renderMap(devices, config) {
    const mapEl = $("map");
    const map = L.map(mapEl, { zoomSnap: 0.5 });
    state.map = map;
    const note = $("map-note");
    if (config.tile_url) {
      // Leaflet writes an attribution as HTML: it gets the serialisation of the elements
      // built from the configured text (text escaped, links of an http(s) href only).
      const attribution = attributionElement(String(config.tile_attribution || "")).innerHTML;
      const options = {
        attribution,
        minZoom: config.min_zoom ?? 0,
        maxZoom: config.max_zoom ?? 19,
        // The page sends no Referer anywhere else; a tile server's usage policy
        // (OpenStreetMap's) asks for the page's origin, which is what it gets.
        referrerPolicy: "strict-origin-when-cross-origin",
      };
      // No tile is asked for where the map has none (PDOK's: the Netherlands).
      if (config.bounds) options.bounds = L.latLngBounds(config.bounds);
      state.tileLayer = L.tileLayer(config.tile_url, options).addTo(map);
      state.basemap = { name: config.basemap, url: config.tile_url, attribution };
      mapEl.dataset.basemap = config.basemap || "custom";
      note.textContent = "";
    } else {
      state.basemap = { name: "none", url: "", attribution: "" };
      mapEl.dataset.basemap = "none";
      mapEl.classList.add("no-tiles");
      note.textContent = "No background map is configured: the devices are drawn at their " +
        "coordinates, as published in the register.";
    }
    L.control.scale({ imperial: false }).addTo(map);
    // The view first: Leaflet adds markers to a map only once it has one.
    const points = devices.filter((d) => d.location).map((d) => [d.location.lat, d.location.lon]);
    let fitting = false;
    let userMoved = false;
    const fit = () => {
      fitting = true;
      map.fitBounds(L.latLngBounds(points), { padding: [30, 30], maxZoom: 16, animate: false });
      fitting = false;
    };
    map.on("dragstart", () => { userMoved = true; });
    map.on("zoomstart", () => { if (!fitting) userMoved = true; });
    if (points.length) {
      fit();
      // A map that changes size (a turned phone, a resized window) shows every device again,
      // until someone pans or zooms it.
      if ("ResizeObserver" in window) {
        new ResizeObserver(() => {
          map.invalidateSize({ animate: false });
          if (!userMoved) fit();
        }).observe(mapEl);
      }
    } else {
      map.setView([0, 0], 1);
      note.textContent = "No device in the register has a published location.";
    }
    for (const d of devices) {
      if (!d.location) continue;
      const latlng = [d.location.lat, d.location.lon];
      const label = `${d.device_id}, site ${d.site}: ${readingText(d)}`;
      const kind = d.counts ? "count" : "air";
      const pm = freshPm(d);
      const b = band(pm);
      const indicative = Boolean(b) && pmIndicative(d);
      const icon = L.divIcon({
        className: `dev-marker ${kind}`,
        html: `<span class="shape ${b ? `band-${b.key}` : "nodata"}${indicative ? " indicative" : ""}"></span>`,
        iconSize: [24, 24],
        iconAnchor: [12, 12],
      });
      const marker = L.marker(latlng, { icon, title: label, keyboard: true, riseOnHover: true });
      marker.on("click", () => select({ kind: "device", id: d.device_id }, true));
      marker.bindPopup(() => markerPopup(d), { autoPan: false });
      marker.addTo(map);
      const node = marker.getElement();
      node.setAttribute("aria-label", label);
      node.dataset.device = d.device_id;
      // Leaflet makes the marker focusable (role=button) but presses it with neither key.
      node.addEventListener("keydown", (e) => {
        if (e.key === "Enter" || e.key === " ") {
          e.preventDefault();
          select({ kind: "device", id: d.device_id }, true);
        }
      });
      state.markers.set(d.device_id, marker);
    }
    mapEl.dataset.markers = String(points.length);
  }

  /** A marker's popup: the device, its latest PM2.5 and how good it is (text only). */
  function markerPopup(d) {
    const box = el("div", { class: "marker-popup", "data-device": d.device_id },
      el("strong", { text: d.device_id }), ` (site ${d.site}): ${readingText(d)}`);
    if (freshPm(d) !== null && pmIndicative(d)) {
      box.dataset.indicative = "true";
      box.append(el("p", { class: "indicative-note", text: INDICATIVE_TEXT }));
    }
    return box;
  }

  // --- selection -----------------------------------------------------------------------------
  function selectedDevices() {
    const sel = state.selection;
    if (!sel) return [];
    if (sel.kind === "device") return [state.devices.get(sel.id)].filter(Boolean);
    return [...state.devices.values()].filter((d) => d.site === sel.id);
  }

  function highlight() {
    const sel = state.selection;
    for (const b of state.listButtons) {
      const on = sel && ((sel.kind === "device" && b.dataset.device === sel.id) ||
        (sel.kind === "site" && b.dataset.site === sel.id));
      b.setAttribute("aria-current", on ? "true" : "false");
    }
    const chosen = new Set(selectedDevices().map((d) => d.device_id));
    for (const [id, marker] of state.markers) {
      const node = marker.getElement();
      if (node) node.classList.toggle("selected", chosen.has(id));
    }
  }

  // The view is in the address (#device=…&range=…): a link shows the same view, each choice
  // is an entry in the history (Back returns to the view before), and a changed address (a
  // link pasted into the open tab, Back, Forward) changes the view.
  function currentHash() {
    const sel = state.selection;
    const params = new URLSearchParams();
    if (sel) params.set(sel.kind, sel.id);
    const range = currentRangeChoice();
    params.set("range", range);
    if (range === "custom") {
      params.set("from", $("range-from").value);
      params.set("to", $("range-to").value);
    }
    return `#${params.toString()}`;
  }

  /** A choice on the page: a new history entry, unless the address says it already. */
  function writeHash() {
    const hash = currentHash();
    state.hash = hash;
    if (hash !== location.hash) history.pushState(null, "", hash);
  }

  function readHash() {
    const params = new URLSearchParams(location.hash.slice(1));
    let range = params.get("range");
    if (!range || !["24h", "7d", "custom"].includes(range)) range = "24h";
    document.querySelector(`input[name=range][value="${range}"]`).checked = true;
    if (range === "custom") {
      if (params.get("from")) $("range-from").value = params.get("from");
      if (params.get("to")) $("range-to").value = params.get("to");
    }
    syncCustom();
    if (params.get("device") && state.devices.has(params.get("device"))) {
      return { kind: "device", id: params.get("device") };
    }
    const site = params.get("site");
    if (site && [...state.devices.values()].some((d) => d.site === site)) {
      return { kind: "site", id: site };
    }
    return null;
  }

  /** Show what the address says; nothing when it is the view already shown. */
  function applyHash() {
    if (location.hash === state.hash) return;
    // An anchor in the page (the skip link's #device-list) is not a view.
    const params = new URLSearchParams(location.hash.slice(1));
    if (location.hash.length > 1 && !["device", "site", "range"].some((k) => params.has(k))) return;
    const selection = readHash();
    if (selection) {
      select(selection, false, true);
    } else {
      clearSelection();
    }
    state.hash = location.hash;
  }

  function clearSelection() {
    state.selection = null;
    state.load += 1; // an answer still on its way is not shown
    highlight();
    $("detail-title").textContent = "Choose a device or a site";
    $("detail-subtitle").textContent = "Click a marker on the map or a name in the list.";
    // The range stays: it is the crowding panel's too.
    for (const fig of document.querySelectorAll("#detail .chart")) {
      destroyPlot(fig.id.replace(/^chart-/, ""));
      fig.hidden = true;
    }
    $("gap-note").hidden = true;
    renderHealth([]);
    renderRegister([]);
    setStatus("");
    $("detail").dataset.state = "empty";
  }

  function select(selection, moveFocus, fromAddress) {
    state.selection = selection;
    highlight();
    if (!fromAddress) writeHash();
    const devices = selectedDevices();
    const title = $("detail-title");
    if (selection.kind === "device") {
      const d = devices[0];
      title.textContent = `Device ${d.device_id}`;
      $("detail-subtitle").textContent = `Site ${d.site}. ${d.purpose || ""}`.trim();
    } else {
      title.textContent = `Site ${selection.id}`;
      $("detail-subtitle").textContent =
        `${devices.length} ${devices.length === 1 ? "device" : "devices"}: ` +
        `${devices.map((d) => d.device_id).join(", ")}. Air readings are the site's mean; ` +
        "counts are the site's devices added up (an hour with no device reporting is a gap).";
    }
    renderHealth(devices, selection.kind === "site");
    renderRegister(devices);
    if (moveFocus) {
      title.focus({ preventScroll: true });
      $("detail").scrollIntoView({ behavior: "smooth", block: "start" });
    }
    loadCharts();
  }

  // --- time range ----------------------------------------------------------------------------
  function currentRangeChoice() {
    return document.querySelector("input[name=range]:checked").value;
  }

  function toLocalInput(ms) {
    const d = new Date(ms - new Date(ms).getTimezoneOffset() * 60000);
    return d.toISOString().slice(0, 16);
  }

  function syncCustom() {
    $("custom-range").hidden = currentRangeChoice() !== "custom";
  }

  /** The chosen range as epoch milliseconds, or an error text. */
  function rangeMs() {
    const choice = currentRangeChoice();
    const minute = 60000;
    // From the start of the running minute back, to its end: in an hour's last minute the
    // start stays in the hour a day ago, so the range holds the day's every whole hour.
    const start = Math.floor(Date.now() / minute) * minute;
    const now = start + minute;
    if (choice === "24h") return { from: start - 24 * 3600000, to: now };
    if (choice === "7d") return { from: start - 7 * 24 * 3600000, to: now };
    const from = Date.parse($("range-from").value);
    const to = Date.parse($("range-to").value);
    if (Number.isNaN(from) || Number.isNaN(to)) return { error: "Give both a start and an end." };
    if (from >= to) return { error: "The start must be before the end." };
    return { from, to };
  }

  function everyFor(spanS) {
    for (const [name, seconds] of EVERY) {
      if (spanS / seconds <= MAX_POINTS_PER_LINE) return [name, seconds];
    }
    return EVERY[EVERY.length - 1];
  }

  function everyText(every) {
    const m = /^(\d+)([smhd])$/.exec(every || "");
    if (!m) return every || "";
    const unit = { s: "second", m: "minute", h: "hour", d: "day" }[m[2]];
    return m[1] === "1" ? unit : `${m[1]} ${unit}s`;
  }

  // --- charts --------------------------------------------------------------------------------
  /** Align series that may have different time axes onto one: the union of their times. */
  function align(lines) {
    const times = new Set();
    for (const line of lines) for (const t of line.times) times.add(t);
    const xs = [...times].sort((a, b) => a - b);
    const index = new Map(xs.map((t, i) => [t, i]));
    const ys = lines.map((line) => {
      const out = new Array(xs.length).fill(null);
      line.times.forEach((t, i) => {
        const v = line.values[i];
        out[index.get(t)] = v === undefined ? null : v;
      });
      return out;
    });
    return { xs, ys };
  }

  /** Tick labels in 24-hour time, with the date at midnight, or dates alone. */
  function timeTicks(_u, splits, _axis, _space, incr) {
    return splits.map((s, i) => {
      const d = new Date(s * 1000);
      const day = d.toLocaleDateString("en-GB", { day: "numeric", month: "short" });
      if (incr >= 86400) return day;
      const hm = d.toLocaleTimeString("en-GB", { hour: "2-digit", minute: "2-digit" });
      return i === 0 || (d.getHours() === 0 && d.getMinutes() === 0) ? `${hm}\n${day}` : hm;
    });
  }

  function destroyPlot(name) {
    if (state.plots[name]) {
      state.plots[name].destroy();
      delete state.plots[name];
    }
  }

  function drawChart(name, lines, unit, digits, range, opts) {
    const fig = $(`chart-${name}`);
    const plotEl = fig.querySelector(".plot");
    const summary = fig.querySelector(".chart-summary");
    destroyPlot(name);
    plotEl.textContent = "";
    // An "aside" line (the counter's running share) has its own scale and right-hand axis;
    // it is not one of the chart's readings.
    const main = lines.filter((l) => !l.aside);
    const nonNull = main.reduce((n, l) => n + l.values.filter((v) => v !== null).length, 0);
    const marked = flaggedLines(main);
    lines = lines.concat(marked);
    renderFlagLegend(fig, main);
    renderQualityNote(fig, []);
    fig.dataset.points = String(nonNull);
    fig.dataset.series = String(main.length);
    if (!main.length || nonNull === 0) {
      fig.dataset.state = "empty";
      summary.textContent = "No readings in this range.";
      plotEl.setAttribute("aria-label", `${fig.querySelector("figcaption").textContent}: no readings in this range`);
      return;
    }
    const { xs, ys } = align(lines);
    const width = Math.max(280, plotEl.clientWidth || fig.clientWidth - 16);
    const fmt = (v) => (v === null || v === undefined ? "–" : `${fmtNumber(v, digits)} ${unit}`);
    const scales = { x: { time: true, range: () => [range.from / 1000, range.to / 1000] } };
    const axes = [{ values: timeTicks, space: 60 }, { label: unit, size: 56 }];
    const aside = lines.find((l) => l.aside);
    if (aside) {
      scales[aside.scale] = { range: [0, 105] }; // 100 % is not drawn on the frame
      axes.push({ scale: aside.scale, side: 1, label: aside.axisLabel, size: 56, grid: { show: false } });
    }
    const unfinished = unfinishedPart(xs, (opts && opts.partial) || [], Boolean(opts && opts.stepped));
    state.unfinished[name] = unfinished;
    fig.dataset.unfinished = unfinished ? "true" : "false";
    const bands = bandLines(main, xs);
    state.bands[name] = bands;
    renderQualityNote(fig, bands);
    const reach = bandReach(bands, main);
    if (reach) { // the y range holds the bands too, not only the lines
      scales.y = { range: (_u, min, max) => uPlot.rangeNum(Math.min(min, reach[0]), Math.max(max, reach[1]), 0.1, true) };
    }
    const hooks = { drawAxes: [(u) => drawBands(u, bands)] };
    if (unfinished) hooks.draw = [(u) => drawUnfinished(u, name, unfinished)];
    const plot = new uPlot({
      width,
      height: 240,
      legend: { live: true },
      hooks,
      cursor: { drag: { x: true, y: false } },
      scales,
      axes,
      series: [{ label: "Time", value: (_u, v) => (v === null ? "–" : fmtTime(v * 1000)) }].concat(lines.map((l, i) => (l.flaggedOf ? {
        // Windows with flagged readings: hollow markers in their line's colour, no line.
        label: l.label,
        stroke: PALETTE[lines.indexOf(l.flaggedOf) % PALETTE.length],
        width: 0,
        spanGaps: false,
        paths: () => null,
        points: { show: true, space: 0, size: 11, width: 2, fill: "#ffffff" },
        value: (_u, v, _si, idx) => (v === null || v === undefined ? "–" : `${fmtNumber(v, digits)} ${unit}, flagged: ${(l.names[idx] || []).join(", ")}`),
      } : {
        label: l.label,
        stroke: l.aside ? "#777" : PALETTE[i % PALETTE.length],
        width: l.aside ? 1 : 1.5,
        spanGaps: false,
        value: (_u, v, _si, idx) => (l.aside ? (v === null ? "–" : `${fmtNumber(v, 0)} %`)
          : fmt(v) + quality(bands[main.indexOf(l)], idx, v, digits, unit)),
        ...(l.aside ? { scale: l.scale, dash: [5, 4] } : {}),
        ...(opts && opts.stepped ? { paths: uPlot.paths.stepped({ align: 1 }) } : {}),
      }))),
    }, [xs, ...ys], plotEl);
    state.plots[name] = plot;
    fig.dataset.state = "ready";
    const parts = main.map((l) => {
      const vals = l.values.filter((v) => v !== null);
      if (!vals.length) return `${l.label}: no readings`;
      const last = vals[vals.length - 1];
      return `${l.label}: ${vals.length} values from ${fmt(Math.min(...vals))} to ` +
        `${fmt(Math.max(...vals))}, latest ${fmt(last)}`;
    });
    const gaps = ys.reduce((n, y, i) => n + (lines[i].aside || lines[i].flaggedOf ? 0 : y.filter((v) => v === null).length), 0);
    const flagged = marked.reduce((n, l) => n + l.values.filter((v) => v !== null).length, 0);
    fig.dataset.flagged = String(flagged);
    fig.dataset.band = String(bands.reduce((n, b) => n + (b ? b.upper.filter((v) => v !== null).length : 0), 0));
    fig.dataset.indicative = String(bands.reduce((n, b) => n + (b ? b.indicative.filter((v) => v === true).length : 0), 0));
    summary.textContent = parts.join("; ") + (gaps ? `. ${gaps} empty windows are shown as gaps.` : ".") +
      (unfinished ? ` ${unfinishedText(unfinished, opts && opts.every)}` : "") +
      (flagged ? ` ${flagged} ${flagged === 1 ? "window holds" : "windows hold"} flagged readings (hollow markers).` : "") +
      (opts && opts.note ? ` ${opts.note}` : "");
    plotEl.setAttribute("aria-label", `${fig.querySelector("figcaption").textContent}. ${summary.textContent}`);
  }

  /** Per main line, on the chart's times `xs`: its values' uncertainty band (lower, upper;
   * null where it has none) and whether each value is indicative, its calibration; null for
   * a line without any (counts). */
  function bandLines(main, xs) {
    return main.map((l) => {
      if (!l.uncertainty && !l.indicative) return null;
      const at = new Map(l.times.map((t, i) => [t, i]));
      const pick = (arr, x) => {
        const i = at.get(x);
        return i === undefined || !arr ? null : (arr[i] ?? null);
      };
      const lower = [], upper = [], indicative = [], calibration = [];
      for (const x of xs) {
        const v = pick(l.values, x);
        const u = pick(l.uncertainty, x);
        lower.push(v !== null && u !== null ? v - u : null);
        upper.push(v !== null && u !== null ? v + u : null);
        indicative.push(pick(l.indicative, x));
        calibration.push(pick(l.calibration, x));
      }
      return { label: l.label, lower, upper, indicative, calibration, uncertainty: xs.map((x) => pick(l.uncertainty, x)) };
    });
  }

  /** The lowest and highest edge of the bands ([lo, hi]), or null; a band of values that are
   * never negative (PM, humidity) is not drawn below 0. */
  function bandReach(bands, main) {
    let lo = Infinity, hi = -Infinity, negative = false;
    bands.forEach((b, i) => {
      if (!b) return;
      for (const v of main[i].values || []) if (v !== null && v < 0) negative = true;
      for (const v of b.lower) if (v !== null) lo = Math.min(lo, v);
      for (const v of b.upper) if (v !== null) hi = Math.max(hi, v);
    });
    if (!Number.isFinite(lo) || !Number.isFinite(hi)) return null;
    return [negative ? lo : Math.max(0, lo), hi];
  }

  /** Under the lines: each line's uncertainty band, in its colour, lighter. */
  function drawBands(u, bands) {
    const ctx = u.ctx;
    ctx.save();
    ctx.beginPath(); // inside the plot's frame: a band may reach beyond the y range
    ctx.rect(u.bbox.left, u.bbox.top, u.bbox.width, u.bbox.height);
    ctx.clip();
    bands.forEach((b, li) => {
      if (!b) return;
      ctx.fillStyle = PALETTE[li % PALETTE.length] + "33";
      let run = [];
      const flush = () => {
        if (run.length === 1) { // a value alone between gaps: a bar of its band
          const i = run[0];
          const x = u.valToPos(u.data[0][i], "x", true);
          const top = u.valToPos(b.upper[i], "y", true);
          const w = 4 * devicePixelRatio;
          ctx.fillRect(x - w / 2, top, w, u.valToPos(b.lower[i], "y", true) - top);
        } else if (run.length) {
          ctx.beginPath();
          run.forEach((i, k) => {
            const x = u.valToPos(u.data[0][i], "x", true);
            const y = u.valToPos(b.upper[i], "y", true);
            if (k === 0) ctx.moveTo(x, y); else ctx.lineTo(x, y);
          });
          for (let k = run.length - 1; k >= 0; k--) {
            const i = run[k];
            ctx.lineTo(u.valToPos(u.data[0][i], "x", true), u.valToPos(b.lower[i], "y", true));
          }
          ctx.closePath();
          ctx.fill();
        }
        run = [];
      };
      for (let i = 0; i < b.upper.length; i++) {
        if (b.upper[i] === null) flush(); else run.push(i);
      }
      flush();
    });
    ctx.restore();
  }

  /** A value's words after its number in the legend (the chart's tooltip): its uncertainty,
   * and indicative or the calibration that made it. */
  function quality(b, idx, v, digits, unit) {
    if (!b || v === null || v === undefined || idx === null || idx === undefined) return "";
    const u = b.uncertainty[idx];
    const pm = u !== null && u !== undefined ? ` ± ${fmtNumber(u, digits)} ${unit}` : "";
    const cal = b.calibration[idx];
    const made = cal && cal !== "raw" ? `, calibrated (${cal})` : "";
    // A calibrated value is indicative still where its window held fog (RIVM: calibration
    // is unreliable in fog).
    if (b.indicative[idx] === true) return made ? `${pm}${made}, indicative (fog)` : `${pm}, indicative`;
    return `${pm}${made}`;
  }

  /** Under a chart: which lines hold indicative values, what that means, and the band. */
  function renderQualityNote(fig, bands) {
    let note = fig.querySelector(".quality-note");
    if (note) note.remove();
    const shown = bands.filter(Boolean);
    if (!shown.length) return;
    note = el("div", { class: "quality-note note" });
    if (shown.some((b) => b.upper.some((v) => v !== null))) note.append(el("p", { class: "band-text", text: BAND_TEXT }));
    const indicative = shown.filter((b) => b.indicative.some((f) => f === true));
    if (indicative.length) {
      const list = el("ul", { class: "indicative-lines" });
      for (const b of indicative) {
        const n = b.indicative.filter((f) => f === true).length;
        list.append(el("li", { "data-line": b.label },
          el("strong", { text: b.label }), `: ${n} ${n === 1 ? "value" : "values"} indicative`));
      }
      note.append(el("p", { class: "indicative-note", text: INDICATIVE_TEXT }), list);
    }
    const calibrated = [...new Set(shown.flatMap((b) => b.calibration.filter((c) => c && c !== "raw")))];
    if (calibrated.length) {
      note.append(el("p", { class: "calibrated-note",
        text: `Calibrated with ${calibrated.join(", ")}: computed from the raw readings when shown; the raw values stay stored.` }));
    }
    fig.insertBefore(note, fig.querySelector(".chart-summary"));
  }

  /** The intervals of a chart that are not over (the API's `partial`, epoch seconds in `xs`):
   * where the lighter part starts and their times; null when every interval is over. A line
   * is lighter from the last whole interval on (the segment into the unfinished one); steps
   * (each value drawn from its time on) from the unfinished interval's own time. */
  function unfinishedPart(xs, partialIso, stepped) {
    const partial = new Set(partialIso.map((t) => Date.parse(t) / 1000));
    const idx = xs.map((x, i) => (partial.has(x) ? i : -1)).filter((i) => i >= 0);
    if (!idx.length) return null;
    const first = stepped ? idx[0] : Math.max(0, idx[0] - 1);
    return { from: xs[first], stepped, times: idx.map((i) => xs[i]) };
  }

  /** Over the chart: the stretch into the unfinished interval drawn lighter, its start
   * marked with a dashed line and "not over yet", so a part-filled hour does not read as a
   * drop. */
  function drawUnfinished(u, name, part) {
    const ctx = u.ctx;
    // A step's drop at its own time is inside the lighter part.
    const left = Math.round(u.valToPos(part.from, "x", true)) - (part.stepped ? 3 : 0);
    const right = u.bbox.left + u.bbox.width;
    if (!(right > left)) return;
    ctx.save();
    ctx.fillStyle = "rgba(255, 255, 255, 0.6)";
    ctx.fillRect(left, u.bbox.top, right - left, u.bbox.height);
    ctx.strokeStyle = "#777";
    ctx.setLineDash([4, 4]);
    ctx.lineWidth = 1;
    ctx.beginPath();
    ctx.moveTo(left + 0.5, u.bbox.top);
    ctx.lineTo(left + 0.5, u.bbox.top + u.bbox.height);
    ctx.stroke();
    ctx.setLineDash([]);
    ctx.fillStyle = "#444";
    ctx.font = `${Math.round(11 * devicePixelRatio)}px sans-serif`;
    ctx.textAlign = "right";
    ctx.fillText("not over yet", right - 4, u.bbox.top + 14 * devicePixelRatio);
    ctx.restore();
    state.unfinishedDrawn[name] = { left, right };
  }

  function unfinishedText(part, every) {
    const unit = everyText(every || "");
    const what = /^[a-z]+$/.test(unit) ? `current ${unit}` : `last interval (${unit || every})`;
    return part.times.length === 1
      ? `The ${what} is not over yet: its value covers only part of it and is drawn lighter.`
      : `The last ${part.times.length} intervals are not over yet: their values cover only part of them and are drawn lighter.`;
  }

  /** For each line with flagged readings, a line of its flagged windows alone (drawn as
   * hollow markers over it). */
  function flaggedLines(main) {
    const out = [];
    for (const l of main) {
      if (!l.flags || !l.flags.some((f) => f && f.length)) continue;
      out.push({
        label: `${l.label} · flagged`,
        flaggedOf: l,
        names: l.flags,
        times: l.times,
        values: l.values.map((v, i) => (l.flags[i] && l.flags[i].length ? v : null)),
      });
    }
    return out;
  }

  /** Under a chart: each quality flag its lines carry, in one sentence (from the API). */
  function renderFlagLegend(fig, main) {
    let legend = fig.querySelector(".flag-legend");
    if (legend) legend.remove();
    const present = new Set();
    for (const l of main) for (const names of l.flags || []) for (const n of names || []) present.add(n);
    if (!present.size) return;
    legend = el("div", { class: "flag-legend note" },
      el("p", {}, "Hollow markers: windows with readings that a quality check flagged as " +
        "doubtful. Their values are kept and included in the mean; a flag says why:"));
    const list = el("ul", {});
    for (const name of [...present].sort()) {
      const reason = state.flagReasons[name];
      list.append(el("li", { "data-flag": name }, el("strong", {}, name),
        reason ? `: ${reason}.` : ""));
    }
    legend.append(list);
    fig.insertBefore(legend, fig.querySelector(".chart-summary"));
  }

  function chartError(name, message) {
    const fig = $(`chart-${name}`);
    destroyPlot(name);
    renderFlagLegend(fig, []);
    renderQualityNote(fig, []);
    fig.querySelector(".plot").textContent = "";
    fig.dataset.points = "0";
    fig.dataset.state = "error";
    fig.querySelector(".chart-summary").textContent = message;
  }

  function seriesLabel(s, quantity, many) {
    const who = s.device_id || (s.site ? `site ${s.site}` : "");
    const base = quantityInfo(quantity, state.units).label;
    if (!many) return base;
    return [base, who, s.sensor].filter(Boolean).join(" · ");
  }

  function airLines(answer, quantities) {
    const lines = [];
    for (const q of quantities) {
      const carrying = answer.series.filter((s) => s.values && Array.isArray(s.values[q]) &&
        s.values[q].some((v) => v !== null));
      for (const s of carrying) {
        const flagged = s.flags && s.flags[q];
        lines.push({
          label: seriesLabel(s, q, carrying.length > 1),
          times: s.time.map((t) => Date.parse(t) / 1000),
          values: s.values[q],
          flags: flagged ? flagged.flags : null, // per window: the flags of its readings
          uncertainty: s.uncertainty ? s.uncertainty[q] : null, // ± per window, or null
          indicative: s.indicative ? s.indicative[q] : null, // true: no calibration applied
          calibration: s.calibration ? s.calibration[q] : null, // the calibration, or "raw"
        });
      }
    }
    return lines;
  }

  function countLines(answer, deviceCount) {
    // Per class: both directions, and for a site every device, added up; an hour in which
    // nothing was reported stays null (a gap), never 0. A device's counts in an hour in
    // which its counter did not report (running_fraction null) are not counts: a gap.
    // The counter's running share: a device's running_fraction; for a site, the mean over
    // its counting devices, a device that did not report counting as 0 (null when none did).
    const byClass = new Map();
    const running = new Map(); // time -> {sum, reported}
    for (const s of answer.series) {
      const times = s.time.map((t) => Date.parse(t) / 1000);
      const fraction = s.running_fraction || [];
      times.forEach((t, i) => {
        const f = fraction[i];
        const r = running.get(t) || { sum: 0, reported: false };
        if (f !== null && f !== undefined) {
          r.sum += f;
          r.reported = true;
        }
        running.set(t, r);
      });
      for (const c of s.counts) {
        if (!byClass.has(c.class)) byClass.set(c.class, new Map());
        const sums = byClass.get(c.class);
        c.values.forEach((v, i) => {
          const t = times[i];
          if (!sums.has(t)) sums.set(t, null);
          const f = fraction[i];
          if (f === null || f === undefined) return;
          if (v !== null && v !== undefined) sums.set(t, (sums.get(t) || 0) + v);
        });
      }
    }
    const order = Object.keys(CLASS_LABEL);
    const classes = [...byClass.keys()].sort((a, b) => {
      const ia = order.indexOf(a), ib = order.indexOf(b);
      return (ia < 0 ? 99 : ia) - (ib < 0 ? 99 : ib) || a.localeCompare(b);
    });
    const lines = classes.map((cls) => {
      const entries = [...byClass.get(cls).entries()].sort((a, b) => a[0] - b[0]);
      return {
        label: CLASS_LABEL[cls] || cls,
        times: entries.map((e) => e[0]),
        values: entries.map((e) => e[1]),
      };
    });
    const n = Math.max(1, deviceCount, answer.series.length);
    const entries = [...running.entries()].sort((a, b) => a[0] - b[0]);
    const share = entries.map(([, r]) => (r.reported ? (r.sum / n) * 100 : null));
    if (lines.length) {
      lines.push({
        label: "Counter running", aside: true, scale: "%", axisLabel: "counter running %",
        times: entries.map((e) => e[0]), values: share,
      });
    }
    return lines;
  }

  /** The counts chart's words on the counter's running share. */
  function runningNote(lines, deviceCount, isSite) {
    const line = lines.find((l) => l.aside);
    if (!line) return "";
    const part = line.values.filter((v) => v !== null && v < 100 - 1e-6).length;
    const none = line.values.filter((v) => v === null).length;
    const hours = (k) => `${k} ${k === 1 ? "hour" : "hours"}`;
    let text = `Counter running (dashed, right-hand axis): ${hours(part)} with the counter ` +
      `running part of the time, where the counts are lower than the traffic was; ` +
      `${hours(none)} with no report from the counter, shown as gaps.`;
    if (isSite) {
      text += ` For the site, the share is the mean over its ${deviceCount} counting ` +
        `${deviceCount === 1 ? "device" : "devices"} (a device that did not report counts as 0).`;
    }
    return text;
  }

  async function loadCharts() {
    const sel = state.selection;
    if (!sel) return;
    const load = ++state.load;
    const detail = $("detail");
    const range = rangeMs();
    if (range.error) {
      setStatus(range.error, true);
      return;
    }
    const devices = selectedDevices();
    // Every environmental quantity the device or site measures (its register entries).
    const quantities = new Set(devices.flatMap((d) => d.quantities || []));
    const charts = chartsFor(quantities, state.units);
    const wantAir = charts.size > 0;
    const wantCounts = devices.some((d) => d.counts);
    for (const fig of document.querySelectorAll('#detail .chart[data-kind="air"]')) {
      const name = fig.id.replace(/^chart-/, "");
      if (!charts.has(name)) {
        destroyPlot(name);
        fig.hidden = true;
      }
    }
    for (const [name, chart] of charts) airFigure(name, chart).hidden = false;
    $("chart-counts").hidden = !wantCounts;
    // A counting device: its crowding too (its flow per hour and forecast).
    const wantCrowd = sel.kind === "device" && devices.length === 1 && Boolean(devices[0].counts);
    $("chart-device-crowding").hidden = !wantCrowd;
    if (!wantCrowd) destroyPlot("device-crowding");
    $("gap-note").hidden = !(wantAir || wantCounts);
    detail.dataset.state = "loading";
    setStatus("Loading…");

    const fromIso = new Date(range.from).toISOString();
    const toIso = new Date(range.to).toISOString();
    const [every] = everyFor((range.to - range.from) / 1000);
    const where = new URLSearchParams();
    where.set(sel.kind === "device" ? "device" : "site", sel.id);
    const air = new URLSearchParams(where);
    air.set("from", fromIso);
    air.set("to", toIso);
    air.set("every", every);
    air.set("agg", "mean");
    air.set("values", "calibrated"); // where a calibration applies; each value says which
    air.set("group", sel.kind === "device" ? "device" : "site");
    const counts = new URLSearchParams(where);
    counts.set("from", fromIso);
    counts.set("to", toIso);
    counts.set("every", "1h");

    // One request per batch of whole charts, each within the API's quantities per request.
    const batches = airBatches(charts);
    const airAsked = batches.map((names) => {
      const params = new URLSearchParams(air);
      for (const name of names) for (const q of charts.get(name).quantities) params.append("quantity", q);
      return fetchJSON(`api/v1/air?${params}`).then((answer) => ({ names, answer }));
    });
    const crowd = new URLSearchParams({ from: fromIso, to: toIso });
    const [airResult, countResult, crowdResult] = await Promise.allSettled([
      wantAir ? Promise.all(airAsked) : Promise.resolve(null),
      wantCounts ? fetchJSON(`api/v1/counts?${counts}`) : Promise.resolve(null),
      wantCrowd ? fetchJSON(`api/v1/devices/${encodeURIComponent(sel.id)}/crowding?${crowd}`) : Promise.resolve(null),
    ]);
    if (load !== state.load) return; // a newer choice was made meanwhile
    const problems = [];
    if (wantAir) {
      if (airResult.status === "fulfilled") {
        const answers = new Map();
        for (const { names, answer } of airResult.value) {
          Object.assign(state.units, answer.units || {});
          for (const name of names) answers.set(name, answer);
          state.airEvery = answer.every;
        }
        for (const [name, chart] of chartsFor(quantities, state.units)) {
          const fig = airFigure(name, chart); // a label from the API's units, where new
          const answer = answers.get(name);
          if (fig.hidden || !answer) continue;
          drawChart(name, airLines(answer, chart.quantities), chart.unit, chart.digits, range, {
            partial: answer.partial, every: answer.every,
          });
        }
      } else {
        problems.push(`air readings: ${airResult.reason.message}`);
        for (const name of charts.keys()) chartError(name, airResult.reason.message);
      }
    }
    if (wantCounts) {
      if (countResult.status === "fulfilled") {
        const counters = devices.filter((d) => d.counts).length;
        const lines = countLines(countResult.value, counters);
        drawChart("counts", lines, "per hour", 0, range, {
          stepped: true, note: runningNote(lines, counters, sel.kind === "site"),
          partial: countResult.value.partial, every: countResult.value.every,
        });
      } else {
        problems.push(`counts: ${countResult.reason.message}`);
        chartError("counts", countResult.reason.message);
      }
    }
    if (wantCrowd) {
      if (crowdResult.status === "fulfilled") {
        await state.crowding.loaded; // the areas: the time zone of the device's first
        if (load !== state.load) return;
        state.deviceCrowding.answer = crowdResult.value;
        drawCrowdingFigure("chart-device-crowding", "device-crowding", null, crowdResult.value,
          range, deviceZone(crowdResult.value));
      } else {
        // Said in its own figure only: the counts above are shown all the same (a range
        // within one hour has counts, but no whole hour of crowding).
        const fig = $("chart-device-crowding");
        for (const part of fig.querySelectorAll(".crowding-gaps, .crowding-forecast-note")) part.hidden = true;
        fig.querySelector(".crowding-table tbody").textContent = "";
        const why = crowdResult.reason.message;
        chartError("device-crowding", /holds no whole interval/.test(why)
          ? "No crowding for this range: it holds no whole hour that has ended (crowding is per " +
            "hour); choose a range of an hour or more."
          : `The crowding could not be loaded: ${why}`);
      }
    }
    if (problems.length) {
      setStatus(`Could not load ${problems.join("; ")}`, true);
      detail.dataset.state = "error";
      return;
    }
    const span = `${fmtTime(fromIso)} to ${fmtTime(toIso)}`;
    const how = wantAir ? ` Air readings: mean per ${everyText(state.airEvery || every)}.` : "";
    setStatus(wantAir || wantCounts ? `${span}.${how}` : `${span}: this device reports nothing the dashboard charts.`);
    detail.dataset.state = "ready";
  }

  function resizePlots() {
    for (const [name, plot] of Object.entries(state.plots)) {
      const plotEl = $(`chart-${name}`).querySelector(".plot");
      const width = Math.max(280, plotEl.clientWidth);
      if (Math.abs(width - plot.width) > 2) plot.setSize({ width, height: plot.height }); // each keeps its own
    }
  }

  // --- register entry ------------------------------------------------------------------------
  function given(v) {
    return v === null || v === undefined || v === "" ? "not given" : String(v);
  }

  /** The register's count of flagged readings per quality flag, last 7 days. */
  function flaggedText(counts) {
    const entries = Object.entries(counts || {});
    if (!entries.length) return "none in the last 7 days";
    return entries.map(([name, n]) => `${name}: ${n.toLocaleString("en-GB")}`).join(", ") +
      " in the last 7 days (a reading with two flags counts for each)";
  }

  function registerEntry(d, withHeading) {
    // The note may itself begin with the answer ("no: ..."); the answer is said once.
    const note = (d.personal_data_note || "").replace(/^(yes|no)\s*[:,.-]\s*/i, "");
    const rows = [
      ["What it measures", [
        (d.quantities || []).map((q) => quantityInfo(q, state.units).label).join(", "),
        d.counts ? `counts of ${(d.count_classes || []).map((c) => (CLASS_LABEL[c] || c).toLowerCase()).join(", ")}` +
          (d.directions && d.directions.length ? ` in ${d.directions.length} ${d.directions.length === 1 ? "direction" : "directions"} (${d.directions.join(", ").replaceAll("_", " ")})` : "")
          : "",
      ].filter(Boolean).join("; ") + (d.sensors && d.sensors.length ? ` (sensors: ${d.sensors.join(", ")})` : "")],
      ["Who runs it", given(d.owner)],
      ["Why", given(d.purpose)],
      ["Site", d.site],
      ["Location", d.location
        ? `${d.location.lat}, ${d.location.lon} (published to ${d.location.precision_decimals} decimals)`
        : "not published"],
      ["Personal data", (d.personal_data ? "Yes" : "No") + (note ? `: ${note}` : "")],
      ["Contact", given(d.contact)],
      ["Legal basis", given(d.legal_basis)],
      ["Retention", given(d.retention)],
      ["Licence of the data", given(d.licence)],
      ["How its data arrives", given(d.source_note)],
      ["Uptime", `${pct(d.uptime_24h)} over the last 24 hours, ${pct(d.uptime_7d)} over 7 days`],
      ["Sensors", sensorsText(d)],
      ["Missing messages", `${(d.missing_7d ?? 0).toLocaleString("en-GB")} missing, ` +
        `${(d.messages_7d ?? 0).toLocaleString("en-GB")} received in the last 7 days`],
      ["Latency", d.median_latency_ms_7d === null || d.median_latency_ms_7d === undefined
        ? "not known"
        : `median ${fmtNumber(d.median_latency_ms_7d, 0)} ms from measurement to storage (7 days)`],
      ["First and last message", `${fmtTime(d.first_seen)} – ${fmtTime(d.last_seen)}` +
        (d.last_seen ? ` (${ago(d.last_seen)})` : "")],
      ["Flagged readings", flaggedText(d.flagged_7d)],
    ];
    const dl = el("dl", { "data-device": d.device_id });
    for (const [k, v] of rows) dl.append(el("dt", { text: k }), el("dd", { text: v }));
    const box = el("div", { class: "entry" });
    if (withHeading) box.append(el("h4", { text: `Device ${d.device_id}` }));
    for (const note of sensorNotes(d)) box.append(el("p", { class: "health problem", role: "status", text: note }));
    box.append(dl);
    return box;
  }

  // Under the panel's title: each sensor of the chosen device(s) that is not working.
  function renderHealth(devices, named) {
    const box = $("detail-health");
    const lines = devices.flatMap((d) => sensorNotes(d).map((n) => (named ? `${d.device_id}: ${n}` : n)));
    box.textContent = "";
    lines.forEach((line, i) => {
      if (i) box.append(el("br"));
      box.append(line);
    });
    box.hidden = lines.length === 0;
  }

  function renderRegister(devices) {
    const box = $("register-entries");
    box.textContent = "";
    for (const d of devices) box.append(registerEntry(d, devices.length > 1));
    $("register").hidden = devices.length === 0;
  }

  // --- start ---------------------------------------------------------------------------------
  function wireRange() {
    const now = Date.now();
    $("range-from").value = toLocalInput(now - 3 * 86400000);
    $("range-to").value = toLocalInput(now);
    for (const radio of document.querySelectorAll("input[name=range]")) {
      radio.addEventListener("change", () => {
        syncCustom();
        if (currentRangeChoice() !== "custom" && state.selection) {
          writeHash();
          loadCharts();
        }
        if (currentRangeChoice() !== "custom") loadCrowding();
      });
    }
    $("range-form").addEventListener("submit", (e) => {
      e.preventDefault();
      if (state.selection) {
        writeHash();
        loadCharts();
      }
      loadCrowding();
    });
  }

  // --- crowding panel ------------------------------------------------------------------------
  // The areas (api/v1/areas) and, for the chosen one, its observed level (api/v1/areas/{id}/
  // crowding) as a percentage of its capacity, its thresholds as dashed lines, intervals
  // without a level as gaps (their reasons listed), and the forecast, when the answer holds
  // one, as a band (level_low..level_high) with its line. A counting device's figure (in the
  // device's detail, api/v1/devices/{id}/crowding) is drawn the same way in passers-by per
  // hour: a device has no capacity, so no level and no thresholds.
  // Times are in the area's own time zone (its days, quiet hour and holidays are local
  // there), with the zone's offset, so that the hour that happens twice when summer time
  // ends reads as two hours.
  const FORECAST_COLOUR = "#d95f02";
  const THRESHOLD_COLOURS = ["#b8860b", "#a00000", "#600060"];
  state.crowding = { areas: [], chosen: null, answer: null, load: 0, loaded: null };
  state.deviceCrowding = { answer: null };

  const levelPct = (v) => (v === null || v === undefined ? null : Math.round(v * 1000) / 10);
  const pctText = (v) => (v === null || v === undefined ? "–" : `${fmtNumber(v * 100, 0)} %`);
  const flowText = (v) => (v === null || v === undefined ? "–" : fmtNumber(v, 0));
  const isoS = (iso) => Date.parse(iso) / 1000;
  const given_ = (v) => v !== null && v !== undefined;

  /** `tz` where the browser knows it, else undefined (the browser's own zone). */
  function knownZone(tz) {
    if (!tz) return undefined;
    try {
      new Intl.DateTimeFormat("en-GB", { timeZone: tz });
      return tz;
    } catch (_e) {
      return undefined;
    }
  }

  /** A time (ISO text or ms) in zone `tz`, with the zone's name or offset. */
  function zonedTime(t, tz) {
    const d = new Date(t);
    if (Number.isNaN(d.getTime())) return String(t);
    return d.toLocaleString("en-GB", {
      year: "numeric", month: "short", day: "numeric", hour: "2-digit", minute: "2-digit",
      hourCycle: "h23", timeZoneName: "short", timeZone: knownZone(tz),
    });
  }

  /** Tick labels (as timeTicks) in zone `tz`. */
  function zonedTicks(tz) {
    const zone = knownZone(tz);
    return (_u, splits, _axis, _space, incr) => splits.map((s, i) => {
      const d = new Date(s * 1000);
      const day = d.toLocaleDateString("en-GB", { day: "numeric", month: "short", timeZone: zone });
      if (incr >= 86400) return day;
      const hm = d.toLocaleTimeString("en-GB", { hour: "2-digit", minute: "2-digit", hourCycle: "h23", timeZone: zone });
      return i === 0 || hm === "00:00" ? `${hm}\n${day}` : hm;
    });
  }

  /** An interval such as "1h" in seconds (an hour where it cannot be read). */
  function everyS(every) {
    const m = /^(\d+)([smhd])$/.exec(every || "");
    return m ? Number(m[1]) * { s: 1, m: 60, h: 3600, d: 86400 }[m[2]] : 3600;
  }

  /** Whether the forecast of `answer` belongs on a chart of `range` (the page's range): it
   * is made now, so a range that ends before it was made does not show it. */
  function forecastInRange(fc, range) {
    if (!fc) return false;
    if (!range || range.error) return true;
    return range.to >= Date.parse(fc.made_at);
  }

  /** The series of an answer (and its forecast) on one time axis: times in s; an area's
   * levels and thresholds in %, a device's flow in passers-by per hour. The forecast's
   * points are at the start of the hour each forecasts; its line starts from the last
   * observed value where the two meet (the forecast's first hour follows it). */
  function crowdingSeries(answer, range) {
    const flow = Boolean(answer.device);
    const observed = answer.observed || [];
    const fc = answer.forecast && Array.isArray(answer.forecast.points) ? answer.forecast : null;
    const shown = forecastInRange(fc, range);
    const points = shown ? fc.points : [];
    const value = flow ? (iv) => (given_(iv.flow) ? iv.flow : null) : (iv) => levelPct(iv.level);
    const fValue = flow
      ? (p) => [p.flow, p.low, p.high].map((v) => (given_(v) ? v : null))
      : (p) => [levelPct(p.level), levelPct(p.level_low), levelPct(p.level_high)];
    const xs = [...new Set(observed.map((iv) => isoS(iv.time)).concat(points.map((p) => isoS(p.time))))]
      .sort((a, b) => a - b);
    const at = new Map(xs.map((x, i) => [x, i]));
    const none = () => xs.map(() => null);
    const level = none(), fLine = none(), fLow = none(), fHigh = none();
    for (const iv of observed) level[at.get(isoS(iv.time))] = value(iv);
    for (const p of points) {
      const i = at.get(isoS(p.time));
      [fLine[i], fLow[i], fHigh[i]] = fValue(p);
    }
    if (points.length && observed.length) {
      const last = observed[observed.length - 1];
      const lastX = isoS(last.time);
      const firstX = isoS(points[0].time);
      const v = value(last);
      if (v !== null && lastX < firstX && lastX + everyS(answer.every) >= firstX && fLine[at.get(firstX)] !== null) {
        const i = at.get(lastX);
        fLine[i] = v;
        fLow[i] = v;
        fHigh[i] = v;
      }
    }
    const thresholds = flow ? [] : (answer.thresholds || []).map((t) => xs.map(() => levelPct(t)));
    const band = points.filter((p) => fValue(p)[2] !== null).length;
    const drawn = points.filter((p) => fValue(p)[0] !== null).length;
    return { flow, xs, level, fLine, fLow, fHigh, thresholds, points, forecast: fc, shown, band, drawn };
  }

  function intervalNote(iv, flow) {
    if (flow ? !given_(iv.flow) : !given_(iv.level)) return iv.reason || (flow ? "no count" : "no level");
    if (iv.running_fraction < 1) {
      return `counters ran ${fmtNumber(iv.running_fraction * 100, 0)} % of it; the count is scaled up`;
    }
    return "";
  }

  /** An enclosed area's interval: what its occupancy's corrections did (the table's note). */
  function occupancyNote(iv) {
    const parts = [];
    if (given_(iv.reset_from)) {
      parts.push(`occupancy reset to 0 at the quiet hour (it was ${fmtNumber(iv.reset_from, 0)})`);
    }
    if (given_(iv.corrected) && iv.corrected > 0) {
      parts.push(`${fmtNumber(iv.corrected, 0)} more went out than were in: left out, the occupancy cannot go below 0`);
    }
    return parts;
  }

  /** The table's header row. */
  function crowdingHead(flow) {
    const cols = flow
      ? ["Hour from", "Passers-by", "Counter ran", "Note"]
      : ["Interval from", "Level", "Threshold reached", "Counters ran", "Note"];
    return el("tr", {}, ...cols.map((c) => el("th", { scope: "col", text: c })));
  }

  /** The words on the forecast: why there is none, or what it is of. */
  function forecastNote(answer, s, tz) {
    if (s.forecast && !s.shown) {
      return `The forecast made at ${zonedTime(s.forecast.made_at, tz)} is of the hours after ` +
        "this range: choose the last 24 hours or 7 days to see it.";
    }
    return answer.forecast_note || "";
  }

  /** Draw a crowding figure: `area` (an api/v1/areas entry, or {id, name}) and `answer` (an
   * api/v1/areas/{id}/crowding answer) in the crowding panel, or a device's answer (api/v1/
   * devices/{id}/crowding) in figure `figId`. `tz`: the zone its times are shown in. API
   * text goes in as text only. */
  function drawCrowdingFigure(figId, plotName, area, answer, range, tz) {
    const fig = $(figId);
    const part = (cls) => fig.querySelector(`.${cls}`);
    const plotEl = fig.querySelector(".plot");
    destroyPlot(plotName);
    plotEl.textContent = "";
    fig.hidden = false;
    const s = crowdingSeries(answer, range);
    const flow = s.flow;
    const observed = answer.observed || [];
    const name = flow ? answer.device : (area && (area.name || area.id)) || answer.area || "";
    fig.dataset.area = flow ? "" : (area && area.id) || answer.area || "";
    const zoneText = `times in ${knownZone(tz) || "your browser's time zone"}`;
    part("crowding-caption").textContent = flow
      ? `${name}: passers-by per ${everyText(answer.every)} (pedestrians; ${zoneText})`
      : `${name}: level per ${everyText(answer.every)} (% of its capacity of ${answer.capacity ?? "?"}; ${zoneText})`;
    // Gaps and the intervals the counters ran only part of; consecutive intervals with the
    // same note are one line.
    const gapList = part("crowding-gaps");
    gapList.textContent = "";
    const runs = [];
    for (const iv of observed) {
      const note = intervalNote(iv, flow);
      const prev = runs[runs.length - 1];
      if (note && prev && prev.note === note && prev.next === isoS(iv.time)) prev.last = iv;
      else if (note) runs.push({ note, first: iv, last: iv });
      if (note) runs[runs.length - 1].next = isoS(iv.time) + everyS(answer.every);
    }
    const noValue = (iv) => (flow ? !given_(iv.flow) : !given_(iv.level));
    for (const r of runs) {
      const gap = noValue(r.first);
      const when = r.first === r.last ? zonedTime(r.first.time, tz) : `${zonedTime(r.first.time, tz)} to ${zonedTime(r.last.time, tz)}`;
      gapList.append(el("li", { class: gap ? "gap" : "partial", "data-time": r.first.time, "data-last": r.last.time },
        `${when}: ${gap ? (flow ? "no count: " : "no level: ") : ""}${r.note}`));
    }
    gapList.hidden = !runs.length;
    // The table view.
    const table = part("crowding-table");
    table.querySelector("thead").replaceChildren(crowdingHead(flow));
    const body = table.querySelector("tbody");
    body.textContent = "";
    for (const iv of observed) {
      const cells = flow
        ? [zonedTime(iv.time, tz), flowText(iv.flow), pctText(iv.running_fraction), intervalNote(iv, flow)]
        : [zonedTime(iv.time, tz), pctText(iv.level), given_(iv.reached) ? pctText(iv.reached) : "none",
          pctText(iv.running_fraction), [intervalNote(iv, flow), ...occupancyNote(iv)].filter(Boolean).join("; ")];
      body.append(el("tr", { "data-time": iv.time }, ...cells.map((c) => el("td", { text: c }))));
    }
    for (const p of s.points) {
      const when = `${zonedTime(p.time, tz)} (forecast, ${p.horizon})`;
      let cells;
      if (flow) {
        cells = [when, flowText(p.flow), "", given_(p.low) ? `likely ${flowText(p.low)} to ${flowText(p.high)}` : ""];
      } else if (given_(p.level)) {
        cells = [when, pctText(p.level), "", "",
          given_(p.level_low) ? `likely ${pctText(p.level_low)} to ${pctText(p.level_high)}` : ""];
      } else { // an enclosed area: the people coming in, no level
        cells = [when, "–", "", "", `people coming in: ${flowText(p.flow)} per hour` +
          (given_(p.low) ? ` (likely ${flowText(p.low)} to ${flowText(p.high)})` : "")];
      }
      body.append(el("tr", { class: "forecast", "data-time": p.time, "data-horizon": p.horizon },
        ...cells.map((c) => el("td", { text: c }))));
    }
    // The forecast's note: why there is none, or what it is of (an enclosed area's).
    const fNote = part("crowding-forecast-note");
    fNote.textContent = forecastNote(answer, s, tz);
    fNote.hidden = !fNote.textContent;
    // The text summary: the latest level (or flow) and the threshold it reached.
    const latest = [...observed].reverse().find((iv) => !noValue(iv));
    const thresholdsText = (answer.thresholds || []).map(pctText).join(" and ");
    let summary;
    if (flow) {
      summary = latest
        ? `Latest ${flowText(latest.flow)} passers-by per ${everyText(answer.every)} (${zonedTime(latest.time, tz)}).`
        : "No count in this range: the device sent none.";
    } else if (latest) {
      summary = `Latest level ${pctText(latest.level)} (${zonedTime(latest.time, tz)}): ` +
        (given_(latest.reached) ? `at or above its ${pctText(latest.reached)} threshold.`
          : `below its thresholds (${thresholdsText}).`);
    } else if (area && Array.isArray(area.devices) && !area.devices.length) {
      summary = "No level in this range: the area has no counting device (none is inside its polygon, and it names no lines).";
    } else if (observed.length && observed.every((iv) => (iv.reason || "").startsWith("no counter reported"))) {
      const which = area && Array.isArray(area.devices) ? ` (${area.devices.join(", ")})` : "";
      summary = `No level in this range: none of its counters${which} reported.`;
    } else {
      summary = "No level in this range.";
    }
    if (latest && latest.running_fraction < 1) {
      summary += ` ${flow ? "Its counter" : "Its counters"} ran ${pctText(latest.running_fraction)} of that interval.`;
    }
    const gaps = observed.filter(noValue).length;
    if (gaps && latest) {
      summary += ` ${gaps} ${gaps === 1 ? "interval has" : "intervals have"} no ${flow ? "count" : "level"} (gaps; the reasons are listed below).`;
    }
    const lastP = s.points[s.points.length - 1];
    if (lastP && flow) {
      summary += ` Forecast ${lastP.horizon} ahead: ${flowText(lastP.flow)}` +
        (given_(lastP.low) ? ` (likely ${flowText(lastP.low)} to ${flowText(lastP.high)}).` : ".");
    } else if (lastP && given_(lastP.level)) {
      summary += ` Forecast ${lastP.horizon} ahead: ${pctText(lastP.level)}` +
        (given_(lastP.level_low) ? ` (likely ${pctText(lastP.level_low)} to ${pctText(lastP.level_high)}).` : ".");
    } else if (lastP && given_(lastP.flow)) {
      summary += ` Forecast of the people coming in, ${lastP.horizon} ahead: ${flowText(lastP.flow)} per hour` +
        (given_(lastP.low) ? ` (likely ${flowText(lastP.low)} to ${flowText(lastP.high)}).` : ".");
    }
    if (flow && (answer.areas || []).length) {
      summary += ` It counts for the area${answer.areas.length === 1 ? "" : "s"} ${answer.areas.join(", ")}: ` +
        "their levels are in the Crowding panel.";
    }
    part("crowding-summary").textContent = summary;
    fig.dataset.points = String(s.level.filter((v) => v !== null).length);
    fig.dataset.gaps = String(gaps);
    fig.dataset.forecast = String(s.points.length);
    fig.dataset.band = String(s.band);
    fig.dataset.zone = knownZone(tz) || "";
    plotEl.setAttribute("aria-label", `Chart of ${part("crowding-caption").textContent}. ${summary}`);
    if (!s.xs.length) {
      fig.dataset.state = "empty";
      return null;
    }
    const unit = flow ? "" : " %";
    const show = (v) => (v === null || v === undefined ? "–" : `${fmtNumber(v, flow ? 0 : 1)}${unit}`);
    const reasonAt = new Map(observed.map((iv) => [isoS(iv.time), intervalNote(iv, flow)]));
    const series = [
      { label: "Time", value: (_u, v) => (v === null ? "–" : zonedTime(v * 1000, tz)) },
      {
        label: flow ? "Passers-by" : "Level", stroke: PALETTE[0], width: 2, spanGaps: false,
        value: (_u, v, _si, idx) => (v === null || v === undefined
          ? (reasonAt.get(s.xs[idx]) ? `${flow ? "no count" : "no level"}: ${reasonAt.get(s.xs[idx])}` : "–")
          : `${show(v)}${reasonAt.get(s.xs[idx]) ? ` (${reasonAt.get(s.xs[idx])})` : ""}`),
      },
      { label: "Forecast", stroke: FORECAST_COLOUR, width: 2, dash: [6, 3], spanGaps: false,
        value: (_u, v) => show(v) },
      { label: "Forecast low", stroke: "rgba(217,95,2,0.35)", width: 1, spanGaps: false,
        value: (_u, v) => show(v) },
      { label: "Forecast high", stroke: "rgba(217,95,2,0.35)", width: 1, spanGaps: false,
        value: (_u, v) => show(v) },
    ].concat((flow ? [] : answer.thresholds || []).map((t, i) => ({
      label: `Threshold ${pctText(t)}`, stroke: THRESHOLD_COLOURS[i % THRESHOLD_COLOURS.length],
      width: 1, dash: [4, 4], points: { show: false }, value: () => pctText(t),
    })));
    const xMin = Math.min(s.xs[0], !range || range.error ? s.xs[0] : range.from / 1000);
    const xMax = Math.max(s.xs[s.xs.length - 1], !range || range.error ? 0 : range.to / 1000);
    const zone = knownZone(tz);
    const yRange = flow
      ? (_u, _min, max) => [0, Math.max(10, Math.ceil(((max || 0) * 1.1) / 10) * 10)]
      : (_u, _min, max) => [0, Math.max(100, Math.ceil(((max || 0) + 5) / 10) * 10)];
    const plot = new uPlot({
      width: Math.max(280, plotEl.clientWidth || fig.clientWidth - 16),
      height: 260,
      legend: { live: true },
      ...(zone && uPlot.tzDate ? { tzDate: (ts) => uPlot.tzDate(new Date(ts * 1e3), zone) } : {}),
      scales: { x: { time: true, range: () => [xMin, xMax] }, y: { range: yRange } },
      axes: [{ values: zonedTicks(tz), space: 60 }, { label: flow ? "passers-by per hour" : "% of capacity", size: 56 }],
      bands: [{ series: [4, 3], fill: "rgba(217,95,2,0.18)" }],
      series,
    }, [s.xs, s.level, s.fLine, s.fLow, s.fHigh, ...s.thresholds], plotEl);
    state.plots[plotName] = plot;
    // Without a forecast its three legend entries say nothing: hidden.
    const rows = plot.root.querySelectorAll(".u-legend .u-series");
    for (const i of [2, 3, 4]) if (rows[i]) rows[i].style.display = s.drawn ? "" : "none";
    fig.dataset.state = "ready";
    return plot;
  }

  /** The crowding panel for `area` from `answer` (exported for tests:
   * window.sensorpipeDashboard.drawCrowding). */
  function drawCrowding(area, answer) {
    state.crowding.answer = answer;
    return drawCrowdingFigure("chart-crowding", "crowding", area, answer, rangeMs(), area && area.timezone);
  }
  state.drawCrowding = drawCrowding;

  /** The time zone a device's crowding is shown in: that of its first area (the browser's
   * where it counts for none). */
  function deviceZone(answer) {
    const first = (answer.areas || [])[0];
    const area = state.crowding.areas.find((a) => a.id === first);
    return area ? area.timezone : undefined;
  }

  function chooseArea(id) {
    state.crowding.chosen = id;
    for (const b of $("crowding-areas").querySelectorAll("button")) {
      b.setAttribute("aria-pressed", String(b.dataset.area === id));
    }
    loadCrowding();
  }

  async function loadCrowding() {
    const id = state.crowding.chosen;
    if (!id) return;
    const area = state.crowding.areas.find((a) => a.id === id) || { id };
    const range = rangeMs();
    const status = $("crowding-status");
    if (range.error) {
      status.textContent = range.error;
      return;
    }
    const load = ++state.crowding.load;
    $("crowding").dataset.state = "loading";
    status.textContent = `Loading the levels of ${area.name || id}…`;
    const q = new URLSearchParams({ from: new Date(range.from).toISOString(), to: new Date(range.to).toISOString() });
    let answer;
    try {
      answer = await fetchJSON(`api/v1/areas/${encodeURIComponent(id)}/crowding?${q}`);
    } catch (e) {
      if (load !== state.crowding.load) return;
      status.textContent = `The levels of ${area.name || id} could not be loaded: ${e.message}`;
      $("crowding").dataset.state = "error";
      return;
    }
    if (load !== state.crowding.load) return;
    status.textContent = "";
    drawCrowding(area, answer);
    $("crowding").dataset.state = "ready";
  }

  async function loadAreas() {
    const status = $("crowding-status");
    let areas;
    try {
      areas = await fetchJSON("api/v1/areas");
    } catch (e) {
      status.textContent = `The areas could not be loaded: ${e.message}`;
      $("crowding").dataset.state = "error";
      return;
    }
    state.crowding.areas = areas;
    const list = $("crowding-areas");
    list.textContent = "";
    if (!areas.length) {
      status.textContent = "No areas are registered.";
      $("crowding").dataset.state = "none";
      return;
    }
    status.textContent = "Choose an area to see its level.";
    for (const a of areas) {
      const button = el("button", { type: "button", "data-area": a.id, "aria-pressed": "false" },
        `${a.name} (${a.kind === "enclosed" ? "enclosed" : "street"}, capacity ${a.capacity})`);
      button.addEventListener("click", () => chooseArea(a.id));
      list.append(el("li", {}, button));
    }
    chooseArea(areas[0].id);
  }

  async function start() {
    renderBandLegend();
    wireRange();
    let reg;
    let config;
    try {
      [reg, config] = await Promise.all([fetchJSON("api/v1/devices"), fetchJSON("dashboard/config.json")]);
      // The sentence of each quality flag; without it the legend names the flags alone.
      state.flagReasons = await fetchJSON("api/v1/flags").then((f) => f.flags, () => ({}));
    } catch (e) {
      $("network-about").textContent = `The register could not be loaded: ${e.message}`;
      document.body.dataset.state = "error";
      return;
    }
    state.register = reg;
    for (const d of reg.devices) state.devices.set(d.device_id, d);
    renderHeader(reg);
    await loadLatestPm();
    renderList(reg.devices);
    renderMap(reg.devices, config);
    if ("ResizeObserver" in window) {
      new ResizeObserver(() => resizePlots()).observe($("detail"));
    } else {
      window.addEventListener("resize", resizePlots);
    }
    document.body.dataset.state = "ready";
    state.crowding.loaded = loadAreas();
    applyHash();
    window.addEventListener("hashchange", applyHash);
    window.addEventListener("popstate", applyHash);
  }

  start();
})();
