/* git-prov web interface: hash routes over the read-only JSON API (or, in a report,
   over the answers embedded in the page). Every value from the repository reaches the
   page as a text node or an attribute set through the DOM, never as HTML. */
(function () {
  "use strict";

  const EMBEDDED = document.getElementById("prov-data");
  const REPORT = EMBEDDED ? JSON.parse(EMBEDDED.textContent) : null;
  const main = document.getElementById("main");
  const COLORS = ["#2f6fde", "#e0562b", "#1f8a4c", "#8e44ad", "#d4a017", "#16a2b8", "#c0392b", "#7f8c8d",
    "#2c3e50", "#e67e22", "#27ae60", "#9b59b6", "#f1c40f", "#1abc9c", "#e84393", "#636e72"];
  let pollTimer = null;
  let routeSeq = 0;

  // -- DOM helpers ------------------------------------------------------------------
  function h(tag, attrs, ...children) {
    const el = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined || v === false) continue;
      if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
      else if (k === "class") el.className = v;
      else el.setAttribute(k, v === true ? "" : String(v));
    }
    for (const c of children.flat(Infinity)) {
      if (c === null || c === undefined || c === false) continue;
      el.appendChild(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return el;
  }
  const short = (id) => (id ? String(id).slice(0, 12) : "");
  const link = (href, ...text) => h("a", { href }, ...text);
  const runLink = (id, name) => link("#/run/" + encodeURIComponent(id), name || short(id));
  const commitLink = (c) => (c ? link("#/commit/" + encodeURIComponent(c), h("span", { class: "mono" }, short(c))) : "");
  const status = (s) => h("span", { class: "status " + s }, s);
  function fmt(v) {
    if (v === null || v === undefined) return "";
    if (typeof v === "number") return Number.isInteger(v) ? String(v) : Math.abs(v) >= 1e5 || (Math.abs(v) < 1e-3 && v !== 0) ? v.toExponential(4) : String(+v.toPrecision(6));
    if (typeof v === "object") {
      if (v.$float) return v.$float;
      return JSON.stringify(v);
    }
    return String(v);
  }
  function kv(obj) {
    const keys = Object.keys(obj || {}).sort();
    if (!keys.length) return h("p", { class: "muted" }, "none");
    return h("div", { class: "kv" }, keys.map((k) => [h("div", {}, k), h("div", { class: "mono" }, fmt(obj[k]))]));
  }
  function section(title, ...body) { return [h("h2", {}, title), ...body]; }
  function setMain(...nodes) { main.replaceChildren(...nodes.flat(Infinity).filter((n) => n)); }
  function showError(err) { setMain(h("p", { class: "error" }, String(err && err.message ? err.message : err))); }
  function diffView(text) {
    const pre = h("pre", { class: "diff" });
    for (const line of String(text).split("\n")) {
      const cls = line.startsWith("+++") || line.startsWith("---") || line.startsWith("diff ") ? "file"
        : line.startsWith("@@") ? "hunk" : line.startsWith("+") ? "add" : line.startsWith("-") ? "del" : null;
      pre.appendChild(cls ? h("span", { class: cls }, line) : document.createTextNode(line + "\n"));
    }
    return pre;
  }

  // -- data ---------------------------------------------------------------------------
  function queryKey(path, params) {
    const entries = Object.entries(params || {}).filter(([, v]) => v !== undefined && v !== null && v !== "")
      .map(([k, v]) => [k, String(v)]).sort((a, b) => (a[0] < b[0] ? -1 : 1));
    return path + JSON.stringify(entries);
  }
  async function api(path, params) {
    if (REPORT) {
      const key = queryKey(path, params);
      if (key in REPORT.answers) return REPORT.answers[key];
      if (path === "/api/runs") return REPORT.answers[queryKey("/api/runs", {})];
      throw new Error("this report does not include " + path.replace("/api/", "") + " for " + JSON.stringify(params || {}));
    }
    const qs = new URLSearchParams();
    for (const [k, v] of Object.entries(params || {})) if (v !== undefined && v !== null && v !== "") qs.set(k, v);
    const res = await fetch(path + (qs.toString() ? "?" + qs : ""), { credentials: "same-origin" });
    const body = await res.json().catch(() => ({ error: res.status + " " + res.statusText }));
    if (!res.ok) throw new Error(body.error || res.statusText);
    return body;
  }
  const artifactUrl = (id, key, extra) => "api/run/" + encodeURIComponent(id) + "/artifact?key=" + encodeURIComponent(key) + (extra || "");

  // -- routing ------------------------------------------------------------------------
  function parseHash() {
    const raw = location.hash.replace(/^#\/?/, "");
    const [path, query] = raw.split("?");
    const parts = path.split("/").map(decodeURIComponent);
    return { page: parts[0] || "runs", arg: parts.slice(1).join("/"), q: new URLSearchParams(query || "") };
  }
  function go(page, arg, q) {
    const qs = q ? new URLSearchParams(Object.entries(q).filter(([, v]) => v !== "" && v !== null && v !== undefined)).toString() : "";
    location.hash = "#/" + page + (arg ? "/" + encodeURIComponent(arg) : "") + (qs ? "?" + qs : "");
  }
  async function route() {
    if (pollTimer) { clearInterval(pollTimer); pollTimer = null; }
    const seq = ++routeSeq;
    const r = parseHash();
    document.querySelectorAll("header nav a").forEach((a) => a.classList.toggle("on", a.dataset.nav === r.page));
    const pages = { runs: runsPage, run: runPage, compare: comparePage, lineage: lineagePage, commits: commitsPage, commit: commitPage };
    try {
      await (pages[r.page] || runsPage)(r, seq);
      document.body.dataset.ready = r.page;
    } catch (err) {
      if (seq === routeSeq) showError(err);
      document.body.dataset.ready = "error";
    }
  }
  window.addEventListener("hashchange", route);

  // -- runs table -----------------------------------------------------------------------
  const selected = new Set(JSON.parse(sessionStorage.getItem("prov-selected") || "[]"));
  function saveSelected() { sessionStorage.setItem("prov-selected", JSON.stringify([...selected])); }

  async function runsPage(r) {
    const where = r.q.get("where") || "", order = r.q.get("order") || "", group = r.q.get("group") || "";
    const offset = +(r.q.get("offset") || 0), limit = +(r.q.get("limit") || 50);
    const params = r.q.get("params"), metrics = r.q.get("metrics");
    const t0 = performance.now();
    let page = await api("/api/runs", REPORT ? {} : { where, order, group, offset, limit, params, metrics });
    if (REPORT) page = reportRunsPage(page, order, offset, limit);
    const state = { where, order, group, offset, limit, params: page.columns.params.join(","), metrics: page.columns.metrics.join(",") };
    const again = (change) => go("runs", "", { ...state, ...change });
    const box = h("input", { type: "search", id: "where", placeholder: "filter: metrics.acc > 0.9 and params.lr = 0.01", value: where });
    const compareBtn = h("button", { class: "primary", id: "compare-btn", disabled: selected.size < 1, onclick: () => go("compare", "", { ids: [...selected].join(",") }) }, "Compare selected (" + selected.size + ")");
    const toolbar = h("div", { class: "toolbar" },
      REPORT ? null : [box, h("button", { id: "apply", onclick: () => again({ where: box.value, offset: 0 }) }, "Filter")],
      REPORT ? null : h("label", {}, "group ", h("select", { id: "group", onchange: (e) => again({ group: e.target.value, offset: 0 }) },
        ["", "experiment", "status", "commit"].map((g) => h("option", { value: g, selected: g === group }, g || "none")))),
      columnPicker(page, (p, m) => again({ params: p.join(","), metrics: m.join(",") })),
      compareBtn,
      h("button", { onclick: () => { selected.clear(); saveSelected(); route(); } }, "Clear selection"));
    box.addEventListener("keydown", (e) => { if (e.key === "Enter") again({ where: box.value, offset: 0 }); });
    const cols = [["name", "name"], ["experiment", "experiment"], ["status", "status"], ["created", "created"]];
    const sortKey = (field) => (order === field + " desc" ? field + " asc" : field + " desc");
    const arrow = (field) => (order === field + " desc" ? " ▼" : order === field + " asc" || order === field ? " ▲" : "");
    const th = (label, field, cls) => h("th", { class: cls, title: field ? "sort by " + field : null, onclick: field ? () => again({ order: sortKey(field), offset: 0 }) : null }, label, field ? arrow(field) : "");
    const head = h("tr", {}, h("th", {}, ""), cols.map(([l, f]) => th(l, f)), th("commit", null),
      page.columns.params.map((k) => th(k, "params." + k)), page.columns.metrics.map((k) => th(k, "metrics." + k, "num")));
    const body = h("tbody");
    let lastGroup = null;
    const groupSize = Object.fromEntries((page.groups || []).map((g) => [g.value, g.count]));
    for (const row of page.rows) {
      if (page.group && row.group !== lastGroup) {
        lastGroup = row.group;
        body.appendChild(h("tr", { class: "group" }, h("td", { colspan: 5 + page.columns.params.length + page.columns.metrics.length },
          page.group + ": ", page.group === "commit" ? commitLink(row.group) : row.group || "(none)", " — " + (groupSize[row.group] || 0) + " runs")));
      }
      const box = h("input", { type: "checkbox", "data-id": row.id, checked: selected.has(row.id), onchange: (e) => {
        if (e.target.checked) selected.add(row.id); else selected.delete(row.id);
        saveSelected(); compareBtn.disabled = selected.size < 1; compareBtn.textContent = "Compare selected (" + selected.size + ")";
      } });
      body.appendChild(h("tr", { "data-run": row.id }, h("td", {}, box), h("td", {}, runLink(row.id, row.name || short(row.id))),
        h("td", {}, row.experiment), h("td", {}, status(row.status)), h("td", { class: "muted nowrap" }, (row.created || "").replace("T", " ").slice(0, 19)),
        h("td", {}, commitLink(row.commit), row.dirty ? h("span", { class: "badge", title: "uncommitted changes recorded as a patch" }, "dirty") : ""),
        page.columns.params.map((k) => h("td", { class: "mono" }, fmt(row.params[k]))),
        page.columns.metrics.map((k) => h("td", { class: "num mono" }, fmt(row.metrics[k])))));
    }
    const last = Math.min(offset + limit, page.total);
    const pager = h("div", { class: "toolbar" },
      h("button", { disabled: offset <= 0, onclick: () => again({ offset: Math.max(0, offset - limit) }) }, "‹ prev"),
      h("span", { id: "count" }, page.total ? (offset + 1).toLocaleString() + "–" + last.toLocaleString() + " of " + page.total.toLocaleString() + " runs" : "no runs match"),
      h("button", { disabled: last >= page.total, onclick: () => again({ offset: offset + limit }) }, "next ›"),
      h("span", { class: "muted" }, "answered in " + Math.round(performance.now() - t0) + " ms"));
    setMain(toolbar, h("div", { class: "wrap" }, h("table", { class: "grid", id: "runs" }, h("thead", {}, head), body)), pager);
  }

  function reportRunsPage(all, order, offset, limit) {
    const rows = all.rows.slice();
    if (order) {
      const [field, dir] = order.split(" ");
      const get = (r) => field.startsWith("params.") ? r.params[field.slice(7)] : field.startsWith("metrics.") ? r.metrics[field.slice(8)] : r[field];
      rows.sort((a, b) => { const x = get(a), y = get(b); if (x === y) return 0; if (x === undefined) return 1; if (y === undefined) return -1; return (x < y ? -1 : 1) * (dir === "desc" ? -1 : 1); });
    }
    return { ...all, rows: rows.slice(offset, offset + limit), offset, limit };
  }

  function columnPicker(page, apply) {
    const chosenP = new Set(page.columns.params), chosenM = new Set(page.columns.metrics);
    const list = (title, keys, chosen) => [h("b", {}, title), ...keys.map((k) => h("div", {}, h("label", {},
      h("input", { type: "checkbox", checked: chosen.has(k), onchange: (e) => (e.target.checked ? chosen.add(k) : chosen.delete(k)) }), " " + k)))];
    return h("details", { class: "columns" }, h("summary", {}, "columns"), h("div", {},
      list("params", page.keys.params, chosenP), list("metrics", page.keys.metrics, chosenM),
      h("button", { class: "primary", onclick: () => apply([...chosenP], [...chosenM]) }, "Show")));
  }

  // -- charts ---------------------------------------------------------------------------------
  function smooth(values, weight) {
    if (!weight) return values;
    const out = new Array(values.length);
    let last = 0, n = 0;
    for (let i = 0; i < values.length; i++) {
      const v = values[i];
      if (v === null || !isFinite(v)) { out[i] = v; continue; }
      last = last * weight + (1 - weight) * v;
      n++;
      out[i] = last / (1 - Math.pow(weight, n)); // debiased exponential moving average
    }
    return out;
  }
  function chartOptions() {
    return { x: localStorage.getItem("prov-x") || "step", log: localStorage.getItem("prov-log") === "1", smooth: +(localStorage.getItem("prov-smooth") || 0) };
  }
  function chartControls(redraw) {
    const o = chartOptions();
    const xSel = h("select", { id: "x-axis", onchange: (e) => { localStorage.setItem("prov-x", e.target.value); redraw(); } },
      h("option", { value: "step", selected: o.x === "step" }, "x: step"), h("option", { value: "time", selected: o.x === "time" }, "x: time"));
    const log = h("label", {}, h("input", { type: "checkbox", id: "log-scale", checked: o.log, onchange: (e) => { localStorage.setItem("prov-log", e.target.checked ? "1" : "0"); redraw(); } }), " log scale");
    const sm = h("input", { type: "range", id: "smoothing", min: 0, max: 0.99, step: 0.01, value: o.smooth, onchange: (e) => { localStorage.setItem("prov-smooth", e.target.value); redraw(); } });
    return h("div", { class: "toolbar" }, xSel, log, h("label", {}, "smoothing ", sm));
  }
  // series: [{label, payload}] -> a uPlot chart in `into`
  // zoom(lo, hi): a denser payload for that x range (server mode, one series), or null
  function drawChart(into, title, series, note, zoom) {
    const o = chartOptions();
    const xsOf = (p) => (o.x === "time" ? p.time.map((t) => t / 1000) : p.step);
    const ys = (p) => { let v = smooth(p.value, o.smooth); if (o.log) v = v.map((x) => (x > 0 ? x : null)); return v; };
    let data;
    if (series.length === 1) data = [xsOf(series[0].payload), ys(series[0].payload)];
    else data = uPlot.join(series.map((s) => [xsOf(s.payload), ys(s.payload)]));
    const opts = {
      width: 400, height: 240, legend: { show: series.length > 1 },
      scales: { x: { time: o.x === "time" }, y: o.log ? { distr: 3 } : {} },
      series: [{ label: o.x }, ...series.map((s, i) => ({ label: s.label, stroke: COLORS[i % COLORS.length], width: 1.25, spanGaps: true, points: { show: false } }))],
      axes: [{}, { size: 70 }],
    };
    if (zoom) {
      // a drag-zoom asks the server for the points of that range (LTTB again); a
      // double-click (uPlot resets x to the data shown) brings the whole series back
      let busy = false, zoomed = false, timer = null;
      const full = series[0].payload;
      opts.hooks = { setScale: [(u, key) => {
        if (key !== "x" || busy) return;
        clearTimeout(timer);
        timer = setTimeout(async () => {
          const { min, max } = u.scales.x, xs = u.data[0];
          const whole = xs.length && min <= xs[0] && max >= xs[xs.length - 1];
          if (whole && !zoomed) return; // the chart's first scale: what it shows is the whole series already
          const reset = zoomed && whole;
          const scale = o.x === "time" ? 1000 : 1;
          const p = reset ? full : await zoom(min * scale, max * scale).catch(() => null);
          if (!p) return;
          busy = true;
          u.setData([xsOf(p), ys(p)], reset);
          busy = false;
          zoomed = !reset;
          box.dataset.drawn = String(p.shown);
        }, 200);
      }] };
    }
    const box = h("div", { class: "chart", "data-metric": title, "data-x": o.x }, h("div", { class: "title" }, title), note ? h("div", { class: "note" }, note) : null);
    into.appendChild(box);
    opts.width = Math.max(300, box.clientWidth - 14);
    const plot = new uPlot(opts, data, box);
    box.dataset.drawn = String(series.reduce((a, s) => a + s.payload.shown, 0));
    return plot;
  }
  const pointsNote = (p) => (p.total > p.shown ? p.total.toLocaleString() + " points, " + p.shown.toLocaleString() + " shown (" + (p.summary ? "LTTB of the run's stored summary" : "LTTB") + ")" : p.total.toLocaleString() + " points")
    + (p.nan ? ", " + p.nan + " NaN" : "") + (p.inf ? ", " + p.inf + " ±Inf" : "");

  // -- run page --------------------------------------------------------------------------------
  async function runPage(r, seq) {
    const id = r.arg;
    const run = await api("/api/run/" + id);
    if (seq !== routeSeq) return;
    const charts = h("div", { class: "charts", id: "charts" });
    const keys = Object.keys(run.metrics).sort();
    let draws = 0;
    async function drawAll() {
      const mine = ++draws; // a later redraw (another control changed meanwhile) wins
      charts.dataset.ready = "0";
      const payloads = await Promise.all(keys.map((k) => api("/api/run/" + run.id + "/metric", { key: k, x: "step" })));
      if (seq !== routeSeq || mine !== draws) return;
      charts.replaceChildren();
      const zoom = (k) => (REPORT || payloads[keys.indexOf(k)].total <= payloads[keys.indexOf(k)].shown ? null
        : (lo, hi) => api("/api/run/" + run.id + "/metric", { key: k, x: chartOptions().x, lo: Math.floor(lo), hi: Math.ceil(hi) }));
      keys.forEach((k, i) => drawChart(charts, k, [{ label: run.name || short(run.id), payload: payloads[i] }], pointsNote(payloads[i]), zoom(k)));
      charts.dataset.ready = "1";
    }
    const c = run.code || {};
    const obsBox = h("div");
    const observations = Object.keys(run.observations || {}).sort();
    const artifacts = Object.values(run.artifacts || {}).sort((a, b) => (a.key < b.key ? -1 : 1));
    const previewBox = h("div", { id: "preview" });
    setMain(
      h("h1", { id: "run-name" }, run.name || short(run.id)),
      h("div", { class: "toolbar" }, status(run.status), h("span", { class: "mono muted" }, run.id),
        run.experiment ? h("span", {}, "experiment ", h("b", {}, run.experiment)) : null,
        h("span", {}, "commit ", commitLink(c.commit)), c.is_dirty ? h("span", { class: "badge" }, "dirty") : null,
        link("#/lineage?node=" + encodeURIComponent("run:" + run.id), "lineage"),
        link("#/compare?ids=" + encodeURIComponent(run.id), "compare…"),
        run.status === "running" ? h("span", { class: "badge", id: "live" }, "live: refreshing every 2 s") : null),
      h("div", { class: "kv" }, h("div", {}, "created"), h("div", {}, run.created), h("div", {}, "updated"), h("div", {}, run.updated || ""),
        h("div", {}, "ended"), h("div", {}, run.ended || ""), h("div", {}, "exit code"), h("div", {}, fmt(run.exit_code)),
        h("div", {}, "command"), h("div", { class: "mono" }, (run.command || []).join(" ")),
        h("div", {}, "parent"), h("div", {}, run.parent ? runLink(run.parent.id, run.parent.name || short(run.parent.id)) : ""),
        h("div", {}, "children"), h("div", {}, (run.children || []).map((ch, i) => [i ? ", " : "", runLink(ch.id, ch.name || short(ch.id))]))),
      section("Parameters", h("div", { id: "params" }, kv(run.params))),
      section("Metrics", h("div", { class: "kv", id: "latest" }, keys.map((k) => [h("div", {}, k), h("div", { class: "mono" }, fmt(run.metrics[k].value), h("span", { class: "muted" }, "  step " + run.metrics[k].step))])),
        keys.length ? chartControls(drawAll) : null, charts),
      observations.length ? section("Observations", h("div", { class: "toolbar" }, observations.map((k) => h("button", { onclick: async () => {
        const obs = await api("/api/run/" + run.id + "/observations", { key: k });
        obsBox.replaceChildren(h("table", { class: "grid" }, h("tr", {}, h("th", {}, "epoch"), h("th", {}, "time"), h("th", {}, k)),
          obs.map((o) => h("tr", {}, h("td", {}, o.epoch), h("td", {}, new Date(o.timestamp).toISOString()), h("td", { class: "mono" }, fmt(o.value))))));
      } }, k + " (" + run.observations[k] + ")"))), obsBox) : null,
      section("Tags", kv(run.tags)), section("Attributes", kv(run.attributes)),
      section("Artifacts", artifacts.length ? h("table", { class: "grid", id: "artifacts" },
        h("tr", {}, h("th", {}, "key"), h("th", {}, "size"), h("th", {}, "type"), h("th", {}, "sha256"), h("th", {}, "")),
        artifacts.map((a) => h("tr", {}, h("td", { class: "mono" }, a.key), h("td", { class: "num" }, a.size.toLocaleString()), h("td", {}, a.media_type),
          h("td", { class: "mono", title: a.sha256 }, a.sha256.slice(0, 16)),
          h("td", {}, REPORT ? "" : [h("button", { onclick: () => preview(run.id, a.key, previewBox) }, "preview"), " ",
            h("a", { href: artifactUrl(run.id, a.key, "&download=1") }, "download")])))) : h("p", { class: "muted" }, "none"), previewBox),
      section("Code", h("div", { class: "kv" }, h("div", {}, "commit"), h("div", {}, commitLink(c.commit), " ", h("span", { class: "mono muted" }, c.commit || "")),
        h("div", {}, "uncommitted changes"), h("div", {}, c.is_dirty ? "yes (patch below)" : "no"),
        h("div", {}, "exec path"), h("div", { class: "mono" }, c.exec_path || ""), h("div", {}, "repository"), h("div", { class: "mono" }, c.repo_url || "")),
        run.patch ? diffView(run.patch) : null),
      section("Environment", kv(run.environment || {})),
      section("Datasets", Object.keys(run.datasets || {}).length ? h("table", { class: "grid" }, h("tr", {}, h("th", {}, "key"), h("th", {}, "digest"), h("th", {}, "path"), h("th", {}, "size")),
        Object.values(run.datasets).map((d) => h("tr", {}, h("td", {}, d.key), h("td", { class: "mono" }, d.digest), h("td", { class: "mono" }, d.path || ""), h("td", { class: "num" }, fmt(d.size))))) : h("p", { class: "muted" }, "none")),
      section("Stages", Object.keys(run.stages || {}).length ? Object.entries(run.stages).map(([name, s]) => [h("h3", {}, name), kv(s)]) : h("p", { class: "muted" }, "none")),
      section("Lineage", h("b", {}, "inputs"), kv(run.lineage.inputs), h("b", {}, "outputs"), kv(run.lineage.outputs)));
    await drawAll();
    if (run.status === "running" && !REPORT) {
      pollTimer = setInterval(async () => {
        if (seq !== routeSeq) return;
        const now = await api("/api/run/" + id).catch(() => null);
        if (!now || seq !== routeSeq) return;
        if (now.status !== "running" || Object.keys(now.metrics).length !== keys.length) { route(); return; }
        for (const k of keys) run.metrics[k] = now.metrics[k];
        const latest = document.getElementById("latest");
        if (latest) latest.replaceChildren(...keys.map((k) => [h("div", {}, k), h("div", { class: "mono" }, fmt(now.metrics[k].value), h("span", { class: "muted" }, "  step " + now.metrics[k].step))]).flat());
        await drawAll();
      }, 2000);
    }
  }

  async function preview(runId, key, into) {
    const p = await api("/api/run/" + runId + "/artifact", { key, preview: 1 });
    const head = h("p", {}, h("b", { class: "mono" }, p.key), " — " + p.media_type + ", " + p.size.toLocaleString() + " bytes", p.truncated ? " (head shown)" : "");
    let body;
    if (p.kind === "image") body = h("img", { class: "preview", alt: p.key, src: artifactUrl(runId, p.key) });
    else if (p.kind === "csv") body = h("div", { class: "wrap" }, h("table", { class: "grid" }, (p.rows || []).map((row, i) => h("tr", {}, row.map((c) => h(i ? "td" : "th", {}, c))))));
    else if (p.text !== undefined) body = h("pre", { class: "text" }, p.text);
    else body = h("p", { class: "muted" }, "no preview for this kind; download it");
    into.replaceChildren(head, body);
  }

  // -- compare --------------------------------------------------------------------------------
  async function comparePage(r, seq) {
    const ids = (r.q.get("ids") || (REPORT ? REPORT.compare : [...selected].join(","))).split(",").filter((x) => x);
    if (!ids.length) { setMain(h("p", { class: "muted" }, "Select runs in the runs table, then Compare.")); return; }
    const cmp = await api("/api/compare", { ids: ids.join(",") });
    if (seq !== routeSeq) return;
    const runs = cmp.runs;
    const label = (run) => run.name || short(run.id);
    const onlyDiff = h("input", { type: "checkbox", id: "only-diff", onchange: () => fill() });
    const table = h("table", { class: "grid", id: "diff-table" });
    function fill() {
      const rows = [h("tr", {}, h("th", {}, ""), runs.map((run, i) => h("th", {}, h("i", { style: "display:inline-block;width:10px;height:10px;background:" + COLORS[i % COLORS.length] }), " ", runLink(run.id, label(run)))))];
      rows.push(h("tr", {}, h("td", {}, "commit"), runs.map((run) => h("td", {}, commitLink(run.commit), run.dirty ? " dirty" : ""))));
      for (const kind of ["params", "metrics"]) {
        rows.push(h("tr", { class: "group" }, h("td", { colspan: runs.length + 1 }, kind)));
        for (const k of cmp[kind]) {
          const differs = cmp.differ[kind].includes(k);
          if (onlyDiff.checked && !differs) continue;
          rows.push(h("tr", { class: differs ? "differs" : "" }, h("td", { class: "mono" }, k), runs.map((run) => h("td", { class: "mono" + (kind === "metrics" ? " num" : "") }, fmt(run[kind][k])))));
        }
      }
      table.replaceChildren(...rows);
    }
    fill();
    const charts = h("div", { class: "charts", id: "compare-charts" });
    const keys = cmp.metrics.slice(0, 24);
    let draws = 0;
    async function drawAll() {
      const mine = ++draws; // a later redraw (another control changed meanwhile) wins
      charts.dataset.ready = "0";
      const all = await Promise.all(keys.map((k) => Promise.all(runs.map((run) => (k in run.metrics ? api("/api/run/" + run.id + "/metric", { key: k, x: "step" }).catch(() => null) : null)))));
      if (seq !== routeSeq || mine !== draws) return;
      charts.replaceChildren();
      keys.forEach((k, i) => {
        const series = runs.map((run, j) => ({ label: label(run), payload: all[i][j] })).filter((s) => s.payload);
        if (series.length) drawChart(charts, k, series);
      });
      charts.dataset.ready = "1";
    }
    const aSel = h("select", { id: "diff-a" }, runs.map((run, i) => h("option", { value: run.id, selected: i === 0 }, label(run))));
    const bSel = h("select", { id: "diff-b" }, runs.map((run, i) => h("option", { value: run.id, selected: i === Math.min(1, runs.length - 1) }, label(run))));
    const codeBox = h("div", { id: "code-diff" });
    async function showDiff() {
      if (aSel.value === bSel.value) { codeBox.replaceChildren(h("p", { class: "muted" }, "pick two different runs")); return; }
      const d = await api("/api/diff", { a: aSel.value, b: bSel.value }).catch((e) => ({ error: e.message }));
      if (d.error) { codeBox.replaceChildren(h("p", { class: "muted" }, d.error)); return; }
      codeBox.replaceChildren(
        h("h3", {}, "commits ", commitLink(d.a.commit), " → ", commitLink(d.b.commit)),
        d.commits ? diffView(d.commits) : h("p", { class: "muted" }, d.a.commit === d.b.commit ? "same commit" : "no difference between the commits"),
        h("h3", {}, "uncommitted patches"), d.patches ? diffView(d.patches) : h("p", { class: "muted" }, "the same (" + (d.a.dirty || d.b.dirty ? "both dirty, identical" : "none") + ")"));
    }
    aSel.addEventListener("change", showDiff); bSel.addEventListener("change", showDiff);
    setMain(h("h1", {}, "Compare " + runs.length + " runs"),
      section("Metrics", chartControls(drawAll), charts),
      section("Parameters and metrics", h("label", {}, onlyDiff, " only what differs"), h("div", { class: "wrap" }, table)),
      runs.length > 1 ? section("Parallel coordinates", parallelCoordinates(cmp)) : null,
      runs.length > 1 ? section("Code", h("div", { class: "toolbar" }, aSel, " → ", bSel), codeBox) : null);
    await drawAll();
    if (runs.length > 1) await showDiff();
  }

  function parallelCoordinates(cmp) {
    const dims = [];
    for (const kind of ["params", "metrics"]) for (const k of cmp[kind]) {
      const vals = cmp.runs.map((r) => r[kind][k]);
      if (vals.filter((v) => v !== undefined).length < 1) continue;
      const numeric = vals.every((v) => v === undefined || typeof v === "number");
      if (kind === "params" && !cmp.differ.params.includes(k)) continue;
      dims.push({ kind, key: k, numeric, vals });
    }
    if (dims.length < 2) return h("p", { class: "muted" }, "needs two or more parameters or metrics that vary");
    const W = Math.max(600, dims.length * 140), H = 320, pad = 30, ns = "http://www.w3.org/2000/svg";
    const svg = document.createElementNS(ns, "svg");
    svg.setAttribute("viewBox", "0 0 " + W + " " + (H + 40));
    svg.setAttribute("id", "parallel");
    const x = (i) => pad + (i * (W - 2 * pad)) / (dims.length - 1);
    const scale = dims.map((d) => {
      if (d.numeric) {
        const nums = d.vals.filter((v) => typeof v === "number" && isFinite(v));
        const lo = Math.min(...nums), hi = Math.max(...nums);
        return (v) => (typeof v === "number" && isFinite(v) ? H - ((v - lo) / (hi - lo || 1)) * (H - 20) - 10 : null);
      }
      const cats = [...new Set(d.vals.map((v) => JSON.stringify(v)))];
      return (v) => (v === undefined ? null : H - ((cats.indexOf(JSON.stringify(v)) + 0.5) / cats.length) * (H - 20) - 10);
    });
    const el = (tag, attrs, text) => { const e = document.createElementNS(ns, tag); for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v); if (text !== undefined) e.textContent = text; svg.appendChild(e); return e; };
    dims.forEach((d, i) => {
      el("line", { x1: x(i), x2: x(i), y1: 10, y2: H - 10, stroke: "#999" });
      el("text", { x: x(i), y: H + 16, "text-anchor": "middle", "font-size": 11 }, (d.kind === "metrics" ? "▲ " : "") + d.key);
      if (d.numeric) {
        const nums = d.vals.filter((v) => typeof v === "number" && isFinite(v));
        el("text", { x: x(i) + 4, y: 12, "font-size": 10, fill: "#6b7385" }, fmt(Math.max(...nums)));
        el("text", { x: x(i) + 4, y: H - 4, "font-size": 10, fill: "#6b7385" }, fmt(Math.min(...nums)));
      }
    });
    cmp.runs.forEach((run, j) => {
      let dPath = "", pen = "M";
      dims.forEach((d, i) => { const y = scale[i](d.vals[j]); if (y === null) { pen = "M"; return; } dPath += pen + x(i) + "," + y + " "; pen = "L"; });
      const p = el("path", { d: dPath, stroke: COLORS[j % COLORS.length] });
      const t = document.createElementNS(ns, "title"); t.textContent = run.name || short(run.id); p.appendChild(t);
      p.addEventListener("mouseenter", () => p.classList.add("hi")); p.addEventListener("mouseleave", () => p.classList.remove("hi"));
    });
    return h("div", { class: "pc wrap" }, svg);
  }

  // -- lineage ------------------------------------------------------------------------------
  const NODE_W = 150, NODE_H = 26, RANK_GAP = 90, NODE_GAP = 12;
  // dagre (network simplex ranks, crossing minimisation, Brandes-Köpf coordinates) for
  // graphs it lays out at once; beyond DAGRE_MAX nodes it takes seconds (13.9 s for 940
  // nodes), so larger graphs get a layered layout made here: longest-path ranks, four
  // barycentre sweeps to cut crossings, nodes stacked in each rank.
  const DAGRE_MAX = 150;
  function layoutGraph(g) {
    const place = new Map();
    if (g.nodes.length <= DAGRE_MAX) {
      const d = new dagre.graphlib.Graph();
      d.setGraph({ rankdir: "LR", nodesep: NODE_GAP, ranksep: RANK_GAP, edgesep: 6 });
      d.setDefaultEdgeLabel(() => ({}));
      for (const n of g.nodes) d.setNode(n.id, { width: NODE_W, height: NODE_H });
      for (const e of g.edges) d.setEdge(e.from, e.to);
      dagre.layout(d);
      for (const n of g.nodes) { const p = d.node(n.id); place.set(n.id, { x: p.x, y: p.y }); }
      return place;
    }
    const out = new Map(), preds = new Map(), indeg = new Map();
    for (const n of g.nodes) { out.set(n.id, []); preds.set(n.id, []); indeg.set(n.id, 0); }
    for (const e of g.edges) {
      if (!out.has(e.from) || !out.has(e.to) || e.from === e.to) continue;
      out.get(e.from).push(e.to); preds.get(e.to).push(e.from); indeg.set(e.to, indeg.get(e.to) + 1);
    }
    const rank = new Map(), queue = [];
    for (const n of g.nodes) if (!indeg.get(n.id)) { queue.push(n.id); rank.set(n.id, 0); }
    for (let i = 0; i < queue.length; i++) {
      const v = queue[i];
      for (const w of out.get(v)) {
        rank.set(w, Math.max(rank.get(w) || 0, rank.get(v) + 1));
        indeg.set(w, indeg.get(w) - 1);
        if (!indeg.get(w)) queue.push(w);
      }
    }
    for (const n of g.nodes) if (!rank.has(n.id)) rank.set(n.id, 0); // in a cycle: kept where first met
    const layers = [];
    const queued = new Set(queue);
    for (const v of [...queue, ...g.nodes.map((n) => n.id).filter((id) => !queued.has(id))]) {
      const r = rank.get(v);
      (layers[r] = layers[r] || []).push(v);
    }
    const pos = new Map();
    const index = () => layers.forEach((layer) => layer && layer.forEach((v, i) => pos.set(v, (i + 0.5) / layer.length)));
    index();
    for (let sweep = 0; sweep < 4; sweep++) {
      const down = sweep % 2 === 0;
      const order = down ? layers.keys() : [...layers.keys()].reverse();
      for (const r of order) {
        const layer = layers[r];
        if (!layer) continue;
        const bary = new Map(layer.map((v) => {
          const ns = down ? preds.get(v) : out.get(v);
          return [v, ns.length ? ns.reduce((a, w) => a + pos.get(w), 0) / ns.length : pos.get(v)];
        }));
        layer.sort((a, b) => bary.get(a) - bary.get(b));
        layer.forEach((v, i) => pos.set(v, (i + 0.5) / layer.length));
      }
    }
    layers.forEach((layer, r) => layer && layer.forEach((v, i) =>
      place.set(v, { x: r * (NODE_W + RANK_GAP), y: (i - layer.length / 2) * (NODE_H + NODE_GAP) })));
    return place;
  }

  const KIND_COLOR = { run: "#2f6fde", model: "#8e44ad", dataset: "#1f8a4c", artifact: "#e08a00" };
  // the graph libraries load with the first lineage page (a report has them inline)
  function loadScript(src) {
    return new Promise((resolve, reject) => {
      const el = h("script", { src });
      el.addEventListener("load", resolve);
      el.addEventListener("error", () => reject(new Error("cannot load " + src)));
      document.head.appendChild(el);
    });
  }
  function graphLibraries() { // both at once, while the graph is fetched
    return Promise.all([window.dagre || loadScript("static/vendor/dagre.min.js"),
      window.cytoscape || loadScript("static/vendor/cytoscape.min.js")]);
  }

  async function lineagePage(r, seq) {
    let node = r.q.get("node") || "";
    const direction = r.q.get("direction") || "both", depth = r.q.get("depth") || "";
    const input = h("input", { type: "search", id: "node", value: node, placeholder: "run id, MODEL[@VERSION], run:ID, dataset:KEY@DIGEST, artifact:RUN/PATH" });
    const dirSel = h("select", { id: "direction" }, ["both", "upstream", "downstream"].map((d) => h("option", { value: d, selected: d === direction }, d)));
    const depthIn = h("input", { type: "number", min: 0, id: "depth", value: depth, placeholder: "depth", style: "width:80px" });
    const show = () => go("lineage", "", { node: input.value.trim(), direction: dirSel.value, depth: depthIn.value });
    input.addEventListener("keydown", (e) => { if (e.key === "Enter") show(); });
    const toolbar = h("div", { class: "toolbar" }, input, dirSel, depthIn, h("button", { class: "primary", onclick: show }, "Show"));
    if (!node) { setMain(h("h1", {}, "Lineage"), toolbar, h("p", { class: "muted" }, "Name a run, model, dataset or artifact (or open a run and follow its lineage link).")); return; }
    const t0 = performance.now();
    const [g] = await Promise.all([api("/api/lineage", REPORT ? { node } : { node, direction, depth }), graphLibraries()]);
    if (seq !== routeSeq) return;
    performance.mark("lineage:fetched");
    const aside = h("aside", { id: "node-info" }, h("p", { class: "muted" }, "Click a node; double-click to center the graph on it."));
    const graphBox = h("div", { id: "graph" });
    const big = g.nodes.length > DAGRE_MAX;
    // a big graph opens at a readable zoom around the node asked about (its edges'
    // arrows and the labels visible); "whole graph" fits it all in the view
    const whole = big ? h("button", { id: "graph-fit", onclick: () => window.provGraph && window.provGraph.fit(undefined, 20) }, "whole graph") : null;
    setMain(h("h1", {}, "Lineage"), toolbar, h("p", { class: "muted", id: "graph-size" }, g.nodes.length + " nodes, " + g.edges.length + " edges" + (g.cycles.length ? ", " + g.cycles.length + " cycle(s)" : ""), whole ? " " : "", whole),
      h("div", { class: "side" }, graphBox, aside));
    const t1 = performance.now();
    const place = layoutGraph(g);
    graphBox.dataset.layoutMs = String(Math.round(performance.now() - t1));
    const roots = new Set(g.roots), infos = new Map(g.nodes.map((n) => [n.id, n]));
    const elements = g.nodes.map((n) => { const p = place.get(n.id); return { group: "nodes", data: { id: n.id, label: n.label.length > 34 ? n.label.slice(0, 33) + "…" : n.label, kind: n.kind, color: KIND_COLOR[n.kind] || "#7f8c8d", root: roots.has(n.id) ? 1 : 0 }, position: { x: p.x, y: p.y } }; })
      .concat(g.edges.map((e, i) => ({ group: "edges", data: { id: "e" + i, source: e.from, target: e.to } })));
    performance.mark("lineage:laid-out");
    const cy = cytoscape({
      container: graphBox, elements, layout: { name: "preset", fit: !big }, wheelSensitivity: 0.3, minZoom: 0.02, maxZoom: 4,
      textureOnViewport: big, hideEdgesOnViewport: g.edges.length > 2000,
      style: [
        // few selectors (each is matched against every element) and the colour as data
        { selector: "node", style: { shape: "round-rectangle", width: NODE_W, height: NODE_H, label: "data(label)", "font-size": 9, "text-valign": "center", "text-halign": "center", color: "#fff", "background-color": "data(color)", "min-zoomed-font-size": big ? 7 : 0 } },
        { selector: "node[root = 1]", style: { "border-width": 3, "border-color": "#111" } },
        { selector: "node:selected", style: { "border-width": 3, "border-color": "#f1c40f" } },
        // a big graph's edges are haystack lines (the cheapest cytoscape draws), which
        // take no arrow head at their ends: the direction is an arrow at each one's middle
        { selector: "edge", style: big ? { width: 1, "line-color": "#aab", "curve-style": "haystack", "haystack-radius": 0,
          "mid-target-arrow-shape": "triangle", "mid-target-arrow-color": "#778", "arrow-scale": 1 }
          : { width: 1, "line-color": "#aab", "target-arrow-color": "#aab", "target-arrow-shape": "triangle", "curve-style": "bezier", "arrow-scale": 0.7 } },
      ],
    });
    window.provGraph = cy;
    if (big) {
      const asked = cy.nodes("[root = 1]");
      cy.zoom(0.8);
      cy.center(asked.length ? asked : cy.nodes());
    }
    performance.mark("lineage:built");
    cy.one("render", () => performance.mark("lineage:rendered"));
    cy.on("tap", "node", (evt) => {
      const n = infos.get(evt.target.id());
      const runId = n.id.startsWith("run:") ? n.id.slice(4) : n.id.startsWith("artifact:") ? n.id.slice(9).split("/")[0] : null;
      aside.replaceChildren(...[h("h3", {}, n.label), h("div", { class: "kv" }, h("div", {}, "kind"), h("div", {}, n.kind), h("div", {}, "id"), h("div", { class: "mono" }, n.id),
        h("div", {}, "distance"), h("div", {}, fmt(n.distance)), h("div", {}, "missing"), h("div", {}, n.missing ? "yes" : "no")),
        runId && !n.missing ? h("p", {}, runLink(runId, "open run")) : null,
        h("p", {}, link("#/lineage?" + new URLSearchParams({ node: n.id, direction }).toString(), "center here"))].filter((x) => x)); // (a null child would print "null")
    });
    cy.on("dbltap", "node", (evt) => go("lineage", "", { node: evt.target.id(), direction, depth }));
    cy.ready(() => { graphBox.dataset.ready = "1"; graphBox.dataset.ms = String(Math.round(performance.now() - t0)); });
  }

  // -- commits ------------------------------------------------------------------------------
  async function commitsPage(r, seq) {
    const limit = +(r.q.get("limit") || 50);
    const page = await api("/api/commits", { limit, rev: r.q.get("rev") || "" });
    if (seq !== routeSeq) return;
    setMain(h("h1", {}, "Commits"), h("table", { class: "grid", id: "commits" }, h("tr", {}, h("th", {}, "commit"), h("th", {}, "summary"), h("th", {}, "author"), h("th", {}, "provenance")),
      page.commits.map((c) => h("tr", {}, h("td", {}, commitLink(c.commit)), h("td", {}, c.summary), h("td", {}, c.author),
        h("td", {}, c.captured ? h("span", { class: "badge" }, "captured") : null, c.runs ? h("span", { class: "badge" }, c.runs + " run" + (c.runs > 1 ? "s" : "")) : null,
          c.rewrites ? h("span", { class: "badge" }, "rewritten") : null, c.problems ? h("span", { class: "badge" }, c.problems + " problem(s)") : null)))),
      page.commits.length >= limit ? h("p", {}, h("button", { onclick: () => go("commits", "", { limit: limit * 2 }) }, "more")) : null);
  }

  async function commitPage(r, seq) {
    const p = await api("/api/commit", { rev: r.arg });
    if (seq !== routeSeq) return;
    setMain(h("h1", {}, p.summary), h("p", { class: "mono muted" }, p.commit),
      section("Runs made at this commit", p.runs.length ? h("table", { class: "grid", id: "commit-runs" }, h("tr", {}, h("th", {}, "run"), h("th", {}, "experiment"), h("th", {}, "created")),
        p.runs.map((l) => h("tr", {}, h("td", {}, runLink(l.run, l.name || short(l.run))), h("td", {}, l.experiment), h("td", {}, l.created)))) : h("p", { class: "muted" }, "none")),
      section("Captures", p.captures.length ? p.captures.map((c) => h("div", {}, h("div", { class: "kv" }, h("div", {}, "captured at"), h("div", {}, c.captured_at),
        h("div", {}, "trigger"), h("div", {}, c.trigger), h("div", {}, "tool"), h("div", {}, c.tool), h("div", {}, "tree"), h("div", { class: "mono" }, c.tree)),
        h("b", {}, "environment"), kv(c.environment), h("b", {}, "inputs"), kv(Object.fromEntries((c.inputs || []).map((i) => [i.path, i.sha256 + " (" + i.size + " bytes)"]))),
        h("b", {}, "CI"), kv(c.ci))) : h("p", { class: "muted" }, "not captured")),
      section("Rewrites", p.rewrites.length ? p.rewrites.map((w) => h("div", { class: "mono" }, JSON.stringify(w))) : h("p", { class: "muted" }, "none")),
      p.problems.length ? section("Problems", p.problems.map((x) => h("p", { class: "error" }, x))) : null,
      h("p", { class: "muted" }, "schema " + (p.schema || "none")));
  }

  if (REPORT) {
    if (!location.hash) history.replaceState(null, "", REPORT.start);
    document.title = REPORT.title;
    document.getElementById("where-am-i").textContent = "report made " + REPORT.made + " — offline copy";
    document.querySelectorAll("header nav a").forEach((a) => { if (!REPORT.pages.includes(a.dataset.nav)) a.remove(); });
  } else {
    api("/api/info").then((i) => { document.getElementById("where-am-i").textContent = i.repository + " · git-prov " + i.version + " · read-only"; }).catch(() => {});
  }
  route();
})();
