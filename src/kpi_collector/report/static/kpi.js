/* kpi-collector: the charts of the dashboard's KPI page and of the HTML report (uPlot).
   Data comes from <script id="kpi-data" type="application/json">; text is set with
   textContent only, never parsed as HTML. */
(function () {
  "use strict";
  var state = { charts: [], errors: [] };
  window.kpiCharts = state.charts;

  function css(name, fallback) {
    var v = getComputedStyle(document.documentElement).getPropertyValue(name).trim();
    return v || fallback;
  }
  function day(iso) { var p = iso.split("-"); return Date.UTC(+p[0], +p[1] - 1, +p[2]) / 1000; }
  /* An axis tick (or a value without its server text), as format.py writes a value: up to
     9,999 in full (one decimal from 100, two from 1, four significant digits below 1), then
     12.3k, 4.5M, 1.2B, 3T and from 1e15 up the double's shortest form ("1e+15"); -0 is 0.
     A number that is not whole never reads as one (99.999 is not "100", 999,999 not "1000k"):
     it gets the digits it needs, past 15 significant ones it is marked "≈". */
  function whole(t) { return !/[1-9]/.test((t.split("e")[0].split(".")[1] || "")); }
  function group(t) {
    var p = t.split(".");
    return p[0].replace(/\B(?=(\d{3})+(?!\d))/g, ",") + (p.length > 1 ? "." + p[1] : "");
  }
  function fixed(x, first, strip) {
    for (var d = first; d <= 15; d++) {
      var t = x.toFixed(d);
      if (Number(t) === x) return strip || d > first ? t.replace(/\.?0+$/, "") : t;
      if (!whole(t)) return t;
      if (t.replace(/\D/g, "").length >= 15) break;
    }
    return "≈" + group(String(Math.round(x)));
  }
  function fmt(v) {
    if (v == null) return "";
    if (v === 0) return "0";
    var a = Math.abs(v);
    if (a >= 1e15) return v.toExponential();
    if (a >= 1e4) {
      var units = [[1e12, "T"], [1e9, "B"], [1e6, "M"], [1e3, "k"]];
      for (var i = 0; i < units.length; i++) {
        if (a >= units[i][0] || i === units.length - 1) {
          var x = v / units[i][0], t = x.toFixed(3);
          /* a round tick (12.25k) in full; a value not whole at one decimal stays not whole */
          if (Number(t) === x) return t.replace(/\.?0+$/, "") + units[i][1];
          t = fixed(x, 1, false);
          return t.charAt(0) === "≈" ? t + units[i][1] : group(t) + units[i][1];
        }
      }
    }
    if (v === Math.round(v)) return group(String(v));
    if (a < 1) {
      for (var p = 4; p <= 15; p++) {
        var g = String(Number(v.toPrecision(p)));
        if (!whole(g) || Number(g) === v) return g;
      }
      return "≈" + String(Number(v.toPrecision(4)));
    }
    var f = fixed(v, a >= 100 ? 1 : 2, a < 100);
    return f.charAt(0) === "≈" ? f : group(f);
  }

  /* A point's text as the table and legend show it: today's sum (max, min) is not over yet,
     beside whole periods of the window before. */
  function shown(p) { return p.partial ? p.text + " (so far)" : p.text; }

  /* The start of the period after the one at `x` (seconds, midnight UTC). */
  function nextPeriod(x, period) {
    if (period === "day") return x + 86400;
    if (period === "week") return x + 7 * 86400;
    var d = new Date(x * 1000);
    return Date.UTC(d.getUTCFullYear(), d.getUTCMonth() + 1, 1) / 1000;
  }

  /* x: every period start of the current window, from its first period with a value (in any
     series; never before `since`) to `until` (today's period), so a period without a value is
     a gap (null), never left out: the line breaks there instead of joining its neighbours, and
     a comparison's value at that period still has its place. Comparisons sit at their aligned
     dates ("at"). `texts`: per series, each point's text as the server formatted it (the
     legend shows it). */
  function columns(doc) {
    var xs = [];
    var starts = doc.points.map(function (p) { return p.period; })
      .concat((doc.previous || []).concat(doc.year_ago || []).map(function (p) { return p.at; }))
      .filter(function (d) { return d && (!doc.since || d >= doc.since); }).sort();
    if (starts.length) {
      var end = day(doc.until && doc.until > starts[starts.length - 1] ? doc.until : starts[starts.length - 1]);
      for (var x = day(starts[0]); x <= end; x = nextPeriod(x, doc.period)) xs.push(x);
    }
    var index = {};
    xs.forEach(function (x, i) { index[x] = i; });
    var cur = xs.map(function () { return null; });
    var curText = xs.map(function () { return null; });
    doc.points.forEach(function (p) {
      var i = index[day(p.period)];
      if (i !== undefined) { cur[i] = p.value; curText[i] = shown(p); }
    });
    var texts = [null, curText];
    function aligned(list) {
      var out = xs.map(function () { return null; });
      var text = xs.map(function () { return null; });
      (list || []).forEach(function (p) {
        var i = index[day(p.at)];
        if (i !== undefined) { out[i] = p.value; text[i] = p.text; }
      });
      texts.push(text);
      return out;
    }
    var cols = [xs, cur, aligned(doc.previous), aligned(doc.year_ago)];
    if (doc.target != null) cols.push(xs.map(function () { return doc.target; }));
    return { data: cols, texts: texts };
  }

  /* A legend value: the stored value's own text where the server gave one, else `fmt`. */
  function legendValue(texts) {
    return function (u, v, s, i) {
      var own = texts[s];
      return own && i != null && own[i] != null ? own[i] : fmt(v);
    };
  }

  /* The notes (`kpi annotate`) as dashed vertical lines with their text, at the period each
     falls in; what was drawn is kept on the chart's entry (`markers`). */
  function drawNotes(u, doc, entry) {
    var dpr = window.devicePixelRatio || 1;
    var ctx = u.ctx, top = u.bbox.top, height = u.bbox.height;
    var min = u.scales.x.min, max = u.scales.x.max;
    var color = css("--note", "#7c3aed");
    var drawn = [];
    ctx.save();
    ctx.strokeStyle = color; ctx.fillStyle = color;
    ctx.lineWidth = dpr; ctx.setLineDash([4 * dpr, 3 * dpr]);
    ctx.font = (11 * dpr) + "px system-ui, sans-serif";
    ctx.textAlign = "left"; ctx.textBaseline = "alphabetic";  /* uPlot leaves its axes' own */
    (doc.annotations || []).forEach(function (n) {
      var v = day(n.at || n.day);
      if (min == null || v < min || v > max) return;
      var x = Math.round(u.valToPos(v, "x", true));
      ctx.beginPath(); ctx.moveTo(x, top); ctx.lineTo(x, top + height); ctx.stroke();
      var label = n.text.length > 40 ? n.text.slice(0, 39) + "…" : n.text;
      var width = ctx.measureText(label).width;
      var tx = x + 4 * dpr + width > u.bbox.left + u.bbox.width ? x - 4 * dpr - width : x + 4 * dpr;
      ctx.fillText(label, tx, top + (12 + (drawn.length % 3) * 13) * dpr);
      drawn.push({ day: n.day, text: n.text, x: x / dpr });
    });
    ctx.restore();
    entry.markers = drawn;
  }

  /* The points drawn where the line is not: a value with no value on either side (between
     two gaps, or at an edge beside one) has no segment, so it is drawn as a dot. */
  function isolated(u, s, show) {
    if (show) return null;
    var ys = u.data[s], out = [];
    for (var i = 0; i < ys.length; i++) {
      if (ys[i] != null && (i === 0 || ys[i - 1] == null) && (i === ys.length - 1 || ys[i + 1] == null)) out.push(i);
    }
    return out.length ? out : null;
  }

  function options(el, doc, height, entry, texts) {
    var single = doc.points.length === 1;
    var legend = legendValue(texts);
    return {
      hooks: { draw: [function (u) { drawNotes(u, doc, entry); }] },
      width: Math.max(el.clientWidth - 16, 200),
      height: height,
      cursor: { drag: { x: true, y: false } },
      scales: { x: { time: true } },
      /* a period is a date sent as midnight UTC: read it in UTC, not in the browser's zone
         (west of Greenwich that was the day before) */
      tzDate: function (ts) { return uPlot.tzDate(new Date(ts * 1e3), "Etc/UTC"); },
      axes: [
        { stroke: css("--muted", "#6b7280"), grid: { stroke: css("--line", "#e5e7eb") } },
        { stroke: css("--muted", "#6b7280"), grid: { stroke: css("--line", "#e5e7eb") }, size: 60,
          values: function (u, vals) { return vals.map(fmt); } },
      ],
      series: [
        { label: "Period", value: "{YYYY}-{MM}-{DD}" },
        { label: doc.title, stroke: css("--accent", "#2563eb"), width: 2,
          points: { show: single || doc.points.length <= 60, filter: isolated }, value: legend },
        { label: "previous window", stroke: css("--prev", "#9ca3af"), width: 1.5, dash: [6, 4],
          points: { filter: isolated }, value: legend },
        { label: "a year earlier", stroke: css("--year", "#d97706"), width: 1.5, dash: [2, 3],
          points: { filter: isolated }, value: legend },
      ].concat(doc.target != null ? [
        { label: "target", stroke: css("--good", "#15803d"), width: 1.5, dash: [10, 5],
          points: { show: false },
          value: function (u, v) { return doc.target_text != null ? doc.target_text : fmt(v); } },
      ] : []),
    };
  }

  /* An empty window says what to do instead of drawing an empty chart: [element, text]
     parts, the KPI's title in <bdi> (its own direction, as on the server's page). */
  function emptyParts(doc, hasHistory) {
    if (hasHistory) return [["span", "No values in this range: choose a longer one (or all)."]];
    return [["span", "No values for "], ["bdi", doc.title], ["span", " yet: "], ["code", "kpi run"],
      ["span", " collects the first one; "], ["code", "kpi backfill"],
      ["span", " imports past values where its source can give them."]];
  }

  function draw(el, doc, height, hasHistory) {
    el.textContent = "";
    el.classList.toggle("is-empty", doc.points.length === 0);
    if (doc.points.length === 0) {
      var p = document.createElement("p");
      p.className = "empty";
      emptyParts(doc, hasHistory).forEach(function (item) {
        var part = document.createElement(item[0]);
        part.textContent = item[1];
        p.appendChild(part);
      });
      el.appendChild(p);
      return { kpi: doc.id, period: doc.period, points: 0, chart: null, el: el };
    }
    var entry = { kpi: doc.id, period: doc.period, points: doc.points.length, chart: null, el: el,
                  markers: [] };
    var cols = columns(doc);
    entry.chart = new uPlot(options(el, doc, height, entry, cols.texts), cols.data, el);
    state.charts.push(entry);
    return entry;
  }

  function resizeAll() {
    state.charts.forEach(function (c) { if (c.chart) c.chart.setSize({ width: Math.max(c.el.clientWidth - 16, 200), height: c.chart.height }); });
  }

  function cell(tr, text, cls) {
    var td = document.createElement("td");
    if (cls) td.className = cls;
    td.textContent = text;
    tr.appendChild(td);
  }

  function table(doc) {
    var box = document.getElementById("table");
    if (!box) return;
    var prev = {}, year = {};
    (doc.previous || []).forEach(function (p) { prev[p.at] = p; });
    (doc.year_ago || []).forEach(function (p) { year[p.at] = p; });
    var t = document.createElement("table");
    t.className = "values";
    var head = document.createElement("tr");
    [["period", ""], ["value", "num"], ["previous window", "num"], ["a year earlier", "num"]].forEach(function (h) {
      var th = document.createElement("th"); th.textContent = h[0]; if (h[1]) th.className = h[1]; head.appendChild(th);
    });
    var thead = document.createElement("thead"); thead.appendChild(head); t.appendChild(thead);
    var body = document.createElement("tbody");
    doc.points.slice().reverse().forEach(function (p) {
      var tr = document.createElement("tr");
      cell(tr, p.period);
      cell(tr, shown(p), "num");
      cell(tr, prev[p.period] ? prev[p.period].text : "", "num");
      cell(tr, year[p.period] ? year[p.period].text : "", "num");
      body.appendChild(tr);
    });
    t.appendChild(body);
    var wrap = document.createElement("div");
    wrap.className = "scroll";
    wrap.appendChild(t);
    box.textContent = "";
    box.appendChild(wrap);
  }

  function notesList(doc) {
    var box = document.getElementById("notes");
    if (!box) return;
    box.textContent = "";
    (doc.annotations || []).slice().reverse().forEach(function (n) {
      var li = document.createElement("li");
      var t = document.createElement("time");
      t.textContent = n.day;
      li.appendChild(t);
      li.appendChild(document.createTextNode(" "));
      var text = document.createElement("bdi");  /* its own direction, as the server's list */
      text.textContent = n.text;
      li.appendChild(text);
      box.appendChild(li);
    });
    box.hidden = !(doc.annotations || []).length;
  }

  function annotateForm(reload) {
    var form = document.getElementById("annotate");
    if (!form) return;
    var status = document.getElementById("annotate-status");
    form.addEventListener("submit", function (ev) {
      ev.preventDefault();
      var body = { text: form.elements.text.value, day: form.elements.day.value };
      status.textContent = "Saving…";
      fetch("/api/annotations", {
        method: "POST", credentials: "same-origin",
        headers: { "content-type": "application/json" }, body: JSON.stringify(body),
      }).then(function (r) {
        return r.json().then(function (doc) {
          if (!r.ok) throw new Error(doc.error || ("HTTP " + r.status));
          return doc;
        });
      }).then(function (note) {
        form.elements.text.value = "";
        status.textContent = "Saved: " + note.day + " " + note.text;
        reload();
      }).catch(function (err) { status.textContent = String(err.message || err); });
    });
  }

  function kpiPage(data) {
    var el = document.getElementById("chart");
    var current = { doc: data.series, range: data.range };
    var entry = draw(el, current.doc, 340, data.has_history);
    function applyToggles() {
      if (!entry.chart) return;
      entry.chart.setSeries(2, { show: document.getElementById("cmp-prev").checked });
      entry.chart.setSeries(3, { show: document.getElementById("cmp-year").checked });
    }
    ["cmp-prev", "cmp-year"].forEach(function (id) { document.getElementById(id).addEventListener("change", applyToggles); });

    function mark(selector, attr, value) {
      document.querySelectorAll(selector).forEach(function (a) {
        if (a.getAttribute(attr) === value) a.setAttribute("aria-current", "true"); else a.removeAttribute("aria-current");
      });
    }
    function busy(on) {
      el.setAttribute("aria-busy", on ? "true" : "false");
      var note = document.getElementById("loading");
      if (note) note.hidden = !on;
    }
    function load(period, range) {
      var base = "/api/kpis/" + encodeURIComponent(current.doc.id) + "/series";
      var q = "?period=" + encodeURIComponent(period) + "&range=" + encodeURIComponent(range);
      busy(true);
      return fetch(base + q, { credentials: "same-origin" }).then(function (r) {
        if (!r.ok) throw new Error("HTTP " + r.status);
        return r.json();
      }).then(function (doc) {
        current = { doc: doc, range: range };
        if (entry.chart) {
          entry.chart.destroy();
          state.charts.splice(state.charts.indexOf(entry), 1);
        }
        entry = draw(el, doc, 340, data.has_history);
        applyToggles();
        table(doc);
        notesList(doc);
        var csv = document.getElementById("csv");
        csv.href = base + ".csv?period=" + encodeURIComponent(period) + (doc.since ? "&since=" + doc.since : "");
        mark("[data-period]", "data-period", period);
        mark("[data-range]", "data-range", range);
        history.replaceState(null, "", "?period=" + encodeURIComponent(period) + "&range=" + encodeURIComponent(range));
        busy(false);
        el.setAttribute("data-loaded", period + "/" + range);
      }).catch(function (err) { state.errors.push(String(err)); busy(false); });
    }
    /* A range redraws the chart in place; a period loads the whole page for it (the header's
       value, change and sparkline follow the period), showing the loading state meanwhile. */
    document.addEventListener("click", function (ev) {
      var a = ev.target.closest ? ev.target.closest("a[data-period], a[data-range]") : null;
      if (!a || ev.button !== 0 || ev.metaKey || ev.ctrlKey || ev.shiftKey) return;
      if (a.hasAttribute("data-period")) { busy(true); return; }
      ev.preventDefault();
      load(current.doc.period, a.getAttribute("data-range"));
    });
    window.addEventListener("pageshow", function () { busy(false); });
    annotateForm(function () { load(current.doc.period, current.range); });
    el.setAttribute("data-loaded", current.doc.period + "/" + current.range);
  }

  function report(data) {
    document.querySelectorAll(".chart[data-index]").forEach(function (el) {
      draw(el, data.blocks[+el.getAttribute("data-index")], 220);
    });
  }

  function start() {
    var node = document.getElementById("kpi-data");
    if (!node || typeof uPlot === "undefined") return;
    var data = JSON.parse(node.textContent);
    if (data.series) kpiPage(data);
    if (data.blocks) report(data);
    var timer = null;
    window.addEventListener("resize", function () { clearTimeout(timer); timer = setTimeout(resizeAll, 100); });
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start); else start();
})();
