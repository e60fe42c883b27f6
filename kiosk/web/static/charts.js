// Small SVG charts with no dependencies and no network: vertical bars (grouped or stacked),
// lines and horizontal bars.  Each chart is a <figure> with a heading, an SVG image
// (role="img", <title> and <desc>) drawn at the container's real width — so its text
// stays readable on a phone — a legend, and the numbers as a table inside <details>
// for screen readers and anyone who wants them.  Colours come from CSS classes
// (admin.css), not inline styles.
"use strict";
const Charts = (() => {
  const NS = "http://www.w3.org/2000/svg";
  let seq = 0;
  const hosts = new Map();  // host element -> spec, re-drawn when its width changes

  function svgEl(name, attrs, text) {
    const el = document.createElementNS(NS, name);
    for (const [k, v] of Object.entries(attrs || {})) el.setAttribute(k, String(v));
    if (text !== undefined) el.textContent = text;
    return el;
  }

  function html(name, attrs, text) {
    const el = document.createElement(name);
    for (const [k, v] of Object.entries(attrs || {})) el.setAttribute(k, String(v));
    if (text !== undefined) el.textContent = text;
    return el;
  }

  // A "nice" axis: 0 .. max in 3-5 round steps (whole steps for counts).
  function niceTicks(max, integral) {
    if (!(max > 0)) return {max: 1, step: 1};
    const rough = max / 4;
    const mag = Math.pow(10, Math.floor(Math.log10(rough)));
    let step = [1, 2, 5, 10].map(m => m * mag).find(s => s >= rough);
    if (integral) step = Math.max(1, Math.round(step));
    return {max: Math.ceil(max / step) * step, step};
  }

  function isIntegral(spec) {
    return spec.series.every(s => s.values.every(v => Number.isInteger(Number(v) || 0)));
  }

  const charWidth = px => px * 0.6;  // a fair average for system-ui

  function measureLabels(labels, px) {
    return Math.max(0, ...labels.map(l => String(l).length)) * charWidth(px);
  }

  // spec: {kind: "bar" | "line" | "hbar", title, summary, xLabel, yLabel, categories: [..],
  //        series: [{label, values: [..], cls}], stacked, format: n => string, empty: string,
  //        tableLabel: string ("Show the numbers"),
  //        titles: [..] (optional: each category in full, for tooltips and the table),
  //        groups: [..] (optional, columns only: a second axis row, e.g. the date where a day starts)}
  function render(host, spec) {
    hosts.set(host, spec);
    observe(host);
    draw(host, spec);
  }

  function draw(host, spec) {
    const id = "chart-" + (++seq);
    const fig = html("figure", {class: "chart-figure"});
    const heading = html("h3", {id: id + "-h"}, spec.title);
    fig.append(heading);
    const width = Math.max(260, Math.floor(innerWidth(host) || 600));
    const fmt = spec.format || (n => String(n));
    const total = spec.series.reduce((a, s) => a + s.values.reduce((x, y) => x + (Number(y) || 0), 0), 0);
    const empty = !spec.categories.length || total === 0;
    if (empty) {  // nothing to draw: say so, no empty axes
      fig.append(html("p", {class: "chart-empty-box"}, spec.empty));
      host.replaceChildren(fig);
      return;
    }
    const svg = spec.kind === "hbar" ? hbar(spec, width, fmt, empty) : vertical(spec, width, fmt, empty);
    svg.setAttribute("role", "img");
    svg.setAttribute("aria-labelledby", id + "-t " + id + "-d");
    svg.prepend(svgEl("desc", {id: id + "-d"}, empty ? spec.empty : (spec.summary || "")));
    svg.prepend(svgEl("title", {id: id + "-t"}, spec.title));
    fig.append(svg);
    if (spec.series.length > 1) {
      const legend = html("ul", {class: "legend", "aria-hidden": "true"});
      for (const s of spec.series) {
        const li = html("li");
        li.append(html("span", {class: "swatch " + s.cls}), document.createTextNode(s.label));
        legend.append(li);
      }
      fig.append(legend);
    }
    fig.append(table(spec, fmt, empty));
    host.replaceChildren(fig);
  }

  function table(spec, fmt, empty) {
    const details = html("details", {class: "chart-data"});
    details.append(html("summary", {}, spec.tableLabel || "Data"));
    if (empty) {
      details.append(html("p", {}, spec.empty));
      return details;
    }
    const t = html("table");
    t.append(html("caption", {}, spec.title));
    const head = html("tr");
    head.append(html("th", {scope: "col"}, spec.kind === "hbar" ? (spec.yLabel || "") : (spec.xLabel || "")));
    for (const s of spec.series) head.append(html("th", {scope: "col"}, s.label));
    const thead = html("thead");
    thead.append(head);
    const tbody = html("tbody");
    spec.categories.forEach((c, i) => {
      const tr = html("tr");
      tr.append(html("th", {scope: "row"}, (spec.titles || [])[i] || c));
      for (const s of spec.series) tr.append(html("td", {}, fmt(s.values[i] || 0)));
      tbody.append(tr);
    });
    t.append(thead, tbody);
    details.append(t);
    return details;
  }

  function noData(svg, x, y, text) {
    svg.append(svgEl("text", {x, y, "text-anchor": "middle", class: "chart-empty"}, text));
  }

  // Columns over categories (time buckets): bars (grouped or stacked) or lines.
  function vertical(spec, width, fmt, empty) {
    const small = width < 520;
    const px = small ? 12 : 13;
    const height = small ? 230 : 270;
    const cats = spec.categories;
    const n = Math.max(cats.length, 1);
    const sums = cats.map((_, i) => spec.stacked
      ? spec.series.reduce((a, s) => a + (Number(s.values[i]) || 0), 0)
      : Math.max(0, ...spec.series.map(s => Number(s.values[i]) || 0)));
    const ticks = niceTicks(Math.max(0, ...sums), isIntegral(spec));
    const tickLabels = [];
    for (let v = 0; v <= ticks.max + 1e-9; v += ticks.step) tickLabels.push(v);
    const left = 22 + Math.max(18, measureLabels(tickLabels.map(fmt), px)) + 6;
    const groups = spec.groups && spec.groups.some(Boolean) ? spec.groups : null;
    const m = {top: 12, right: 10, bottom: groups ? 48 + px + 4 : 48, left};
    const w = width - m.left - m.right, h = height - m.top - m.bottom;
    const svg = svgEl("svg", {width, height, viewBox: `0 0 ${width} ${height}`, class: "chart-svg"});
    const y = v => m.top + h - (v / ticks.max) * h;
    for (const v of tickLabels) {
      svg.append(svgEl("line", {x1: m.left, x2: m.left + w, y1: y(v), y2: y(v), class: "grid"}));
      svg.append(svgEl("text", {x: m.left - 6, y: y(v) + px * 0.35, "text-anchor": "end", class: "tick",
                                "font-size": px}, fmt(v)));
    }
    svg.append(svgEl("line", {x1: m.left, x2: m.left + w, y1: m.top + h, y2: m.top + h, class: "axis"}));
    // axis titles
    svg.append(svgEl("text", {x: m.left + w / 2, y: height - 6, "text-anchor": "middle", class: "axis-title",
                              "font-size": px}, spec.xLabel || ""));
    const yt = svgEl("text", {x: 0, y: 0, "text-anchor": "middle", class: "axis-title", "font-size": px,
                              transform: `translate(${px + 1},${m.top + h / 2}) rotate(-90)`}, spec.yLabel || "");
    svg.append(yt);
    if (empty) {
      noData(svg, m.left + w / 2, m.top + h / 2, spec.empty);
      return svg;
    }
    const band = w / n;
    // x labels: as many as fit without overlapping
    const labelW = measureLabels(cats, px) + 10;
    const every = Math.max(1, Math.ceil(labelW / band));
    cats.forEach((c, i) => {
      if (i % every) return;
      svg.append(svgEl("text", {x: m.left + band * (i + 0.5), y: m.top + h + px + 6, "text-anchor": "middle",
                                class: "tick", "font-size": px}, c));
    });
    if (groups) {  // e.g. the date under the first hour of each day, with a divider
      groups.forEach((g, i) => {
        if (!g) return;
        const x = m.left + band * i;
        if (i) svg.append(svgEl("line", {x1: x, x2: x, y1: m.top, y2: m.top + h + 2 * px + 8, class: "divider"}));
        svg.append(svgEl("text", {x: x + 2, y: m.top + h + 2 * px + 10, "text-anchor": "start", class: "tick group",
                                  "font-size": px}, g));
      });
    }
    const full = i => (spec.titles || [])[i] || cats[i];
    if (spec.kind === "line") {
      spec.series.forEach(s => {
        const pts = cats.map((_, i) => `${(m.left + band * (i + 0.5)).toFixed(1)},${y(Number(s.values[i]) || 0).toFixed(1)}`);
        svg.append(svgEl("polyline", {points: pts.join(" "), class: "line " + s.cls, fill: "none"}));
        cats.forEach((c, i) => {
          const dot = svgEl("circle", {cx: m.left + band * (i + 0.5), cy: y(Number(s.values[i]) || 0),
                                       r: small ? 2.5 : 3.5, class: "dot " + s.cls});
          dot.append(svgEl("title", {}, `${full(i)} — ${s.label}: ${fmt(s.values[i] || 0)}`));
          svg.append(dot);
        });
      });
      return svg;
    }
    const gap = Math.min(band * 0.2, 8);
    cats.forEach((c, i) => {
      let base = 0;
      const x0 = m.left + band * i + gap / 2;
      const bw = band - gap;
      spec.series.forEach((s, k) => {
        const v = Number(s.values[i]) || 0;
        if (!v) return;
        let rect;
        if (spec.stacked) {
          rect = svgEl("rect", {x: x0, width: Math.max(bw, 1), y: y(base + v), height: y(base) - y(base + v),
                                class: "bar " + s.cls});
          base += v;
        } else {
          const sw = bw / spec.series.length;
          rect = svgEl("rect", {x: x0 + sw * k, width: Math.max(sw - 1, 1), y: y(v), height: y(0) - y(v),
                                class: "bar " + s.cls});
        }
        rect.append(svgEl("title", {}, `${full(i)} — ${s.label}: ${fmt(v)}`));
        svg.append(rect);
      });
    });
    return svg;
  }

  // One row per category with its bars running right; the value written at the end.
  function hbar(spec, width, fmt, empty) {
    const small = width < 520;
    const px = small ? 12 : 13;
    const cats = spec.categories;
    const k = spec.stacked ? 1 : spec.series.length;
    const barH = k > 1 ? 11 : 18;
    const rowH = barH * k + 12;
    const labelW = Math.min(width * 0.42, measureLabels(cats, px) + 10);
    const valueW = Math.max(...spec.series.flatMap(s => s.values.map(v => fmt(v || 0).length)), 1) * charWidth(px) + 10;
    const m = {top: 8, right: Math.max(valueW, 16), bottom: 44, left: labelW};
    const h = Math.max(cats.length, 1) * rowH;
    const height = h + m.top + m.bottom;
    const w = width - m.left - m.right;
    const svg = svgEl("svg", {width, height, viewBox: `0 0 ${width} ${height}`, class: "chart-svg"});
    const totals = cats.map((_, i) => spec.stacked
      ? spec.series.reduce((a, s) => a + (Number(s.values[i]) || 0), 0)
      : Math.max(0, ...spec.series.map(s => Number(s.values[i]) || 0)));
    const ticks = niceTicks(Math.max(0, ...totals), isIntegral(spec));
    const x = v => m.left + (v / ticks.max) * w;
    for (let v = 0; v <= ticks.max + 1e-9; v += ticks.step) {
      svg.append(svgEl("line", {x1: x(v), x2: x(v), y1: m.top, y2: m.top + h, class: "grid"}));
      svg.append(svgEl("text", {x: x(v), y: m.top + h + px + 4, "text-anchor": "middle", class: "tick",
                                "font-size": px}, fmt(v)));
    }
    svg.append(svgEl("text", {x: m.left + w / 2, y: height - 6, "text-anchor": "middle", class: "axis-title",
                              "font-size": px}, spec.xLabel || ""));
    if (empty) {
      noData(svg, m.left + w / 2, m.top + h / 2 + px / 2, spec.empty);
      return svg;
    }
    cats.forEach((c, i) => {
      const top = m.top + i * rowH + 6;
      const label = fitText(String(c), labelW - 10, px);
      const lt = svgEl("text", {x: m.left - 8, y: top + (barH * k) / 2 + px * 0.35, "text-anchor": "end",
                                class: "tick label", "font-size": px}, label);
      if (label !== String(c)) lt.append(svgEl("title", {}, String(c)));
      svg.append(lt);
      let base = 0;
      spec.series.forEach((s, j) => {
        const v = Number(s.values[i]) || 0;
        const yy = spec.stacked ? top : top + j * barH;
        const bh = spec.stacked ? barH : barH - 2;
        if (v) {
          const rect = svgEl("rect", {x: x(base), y: yy, width: Math.max(x(base + v) - x(base), 1), height: bh,
                                      class: "bar " + s.cls});
          rect.append(svgEl("title", {}, `${c} — ${s.label}: ${fmt(v)}`));
          svg.append(rect);
        }
        if (spec.stacked) base += v;
        else svg.append(svgEl("text", {x: x(v) + 4, y: yy + bh / 2 + px * 0.35, class: "value", "font-size": px - 1},
                               fmt(v)));
      });
      if (spec.stacked) {
        svg.append(svgEl("text", {x: x(base) + 4, y: top + barH / 2 + px * 0.35, class: "value", "font-size": px},
                         fmt(base)));
      }
    });
    return svg;
  }

  // the width the chart may use: the container's content box
  function innerWidth(host) {
    const cs = getComputedStyle(host);
    return host.clientWidth - (parseFloat(cs.paddingLeft) || 0) - (parseFloat(cs.paddingRight) || 0);
  }

  function fitText(text, maxW, px) {
    const max = Math.floor(maxW / charWidth(px));
    return text.length <= max ? text : text.slice(0, Math.max(1, max - 1)) + "…";
  }

  // Re-draw a chart when its container changes width (rotation, window resize).
  let observer = null;
  const widths = new WeakMap();
  function observe(host) {
    if (!window.ResizeObserver) return;
    if (!observer) {
      observer = new ResizeObserver(entries => {
        for (const e of entries) {
          const w = Math.floor(e.contentRect.width);
          if (!w || widths.get(e.target) === w) continue;
          widths.set(e.target, w);
          const spec = hosts.get(e.target);
          if (spec) draw(e.target, spec);
        }
      });
    }
    widths.set(host, Math.floor(innerWidth(host)));
    observer.observe(host);
  }

  return {render, niceTicks};
})();
