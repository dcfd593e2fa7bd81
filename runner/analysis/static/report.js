// report.html's page: draws the comparison from the JSON block the file carries (runner.analysis.report_html).
// Text goes into the page as text (textContent); only the answers, sections and reasons that Python rendered
// and sanitized (markup.py) go in as HTML, through trusted(). Tables show a page of rows at a time, so
// 10,000 calls load at once and sorting or filtering them redraws one page.
"use strict";
(function () {
  const data = JSON.parse(document.getElementById("report-data").textContent);
  const root = document.getElementById("report");

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (key === "text") node.textContent = value;
      else if (key === "class") node.className = value;
      else if (key === "on") for (const [event, fn] of Object.entries(value)) node.addEventListener(event, fn);
      else node.setAttribute(key, value);
    }
    for (const child of children) {
      if (child === null || child === undefined) continue;
      node.append(child instanceof Node ? child : String(child));
    }
    return node;
  }

  // a picture a task sent: only a PNG, JPEG, GIF or WebP data URL becomes an <img> (Python made it a PNG
  // thumbnail); anything else, an SVG or a URL that would be fetched, is named as text
  const PICTURE = /^data:image\/(png|jpeg|gif|webp);base64,[A-Za-z0-9+\/]+={0,2}$/;
  function picture(shown) {
    const caption = el("figcaption", { text: shown.name, title: shown.source });
    if (typeof shown.src === "string" && PICTURE.test(shown.src)) {
      return el("figure", { class: "picture" }, el("img", { src: shown.src, alt: shown.name }), caption);
    }
    return el("figure", { class: "picture missing" }, caption, el("div", { class: "note", text: shown.note || "not shown" }));
  }

  // HTML that Python sanitized (nh3) before it was embedded; nothing else may come through here
  function trusted(html, tag) {
    const node = document.createElement(tag || "div");
    node.innerHTML = html;
    return node;
  }

  function section(id, title, ...children) {
    const node = el("section", { id: id }, el("h2", { text: title }), ...children);
    root.append(node);
    nav.append(el("a", { href: "#" + id, text: title }));
    return node;
  }

  function numeric(text) {
    if (text === null || text === undefined || text === "") return null;
    const cleaned = String(text).replace(/[$,%]/g, "").replace(/\s.*$/, "");
    const value = Number(cleaned);
    return Number.isFinite(value) ? value : null;
  }

  function compare(a, b, asNumbers) {
    if (asNumbers) {
      if (a === null && b === null) return 0;
      if (a === null) return 1; // missing values last, whichever the direction
      if (b === null) return -1;
      return a - b;
    }
    return String(a).localeCompare(String(b), undefined, { numeric: true });
  }

  // a small table of text (summary, cost, errors, scores): every header sorts it
  function staticTable(table, className) {
    const head = el("tr");
    const body = el("tbody");
    const rows = table.rows.map((row) => row.slice());
    const draw = () => {
      body.replaceChildren(...rows.map((row) => el("tr", null, ...row.map((v) => el("td", { text: v })))));
    };
    table.columns.forEach((name, column) => {
      const asNumbers = table.rows.length > 0 && table.rows.every((r) => r[column] === "" || r[column] === "n/a" || numeric(r[column]) !== null);
      let direction = 1;
      head.append(el("th", { text: name, title: "sort", on: { click: () => {
        rows.sort((a, b) => direction * compare(asNumbers ? numeric(a[column]) : a[column],
                                                asNumbers ? numeric(b[column]) : b[column], asNumbers));
        direction = -direction;
        draw();
      } } }));
    });
    draw();
    return el("div", { class: "scroll" }, el("table", { class: className || "data" }, el("thead", null, head), body));
  }

  // tables inside sanitized sections (rendered from report.md's markdown) sort the same way
  function sortable(container) {
    for (const table of container.querySelectorAll("table")) {
      const rows = Array.from(table.querySelectorAll("tbody tr"));
      const body = table.querySelector("tbody");
      table.querySelectorAll("thead th").forEach((th, column) => {
        let direction = 1;
        th.title = "sort";
        th.addEventListener("click", () => {
          const text = (tr) => (tr.children[column] ? tr.children[column].textContent : "");
          const asNumbers = rows.every((tr) => text(tr) === "" || numeric(text(tr)) !== null);
          rows.sort((a, b) => direction * compare(asNumbers ? numeric(text(a)) : text(a),
                                                  asNumbers ? numeric(text(b)) : text(b), asNumbers));
          direction = -direction;
          body.replaceChildren(...rows);
        });
      });
      table.classList.add("data");
      const wrapper = el("div", { class: "scroll" });
      table.replaceWith(wrapper);
      wrapper.append(table);
    }
    return container;
  }

  function usd(value) {
    if (value === null || value === undefined) return "";
    if (value === 0) return "$0";
    if (Math.abs(value) >= 0.01) return "$" + value.toFixed(4);
    return "$" + value.toPrecision(3);
  }

  function shown(value, type) {
    if (value === null || value === undefined) return "";
    if (type === "usd") return usd(value);
    if (type === "number") return Number.isInteger(value) ? String(value) : String(Number(value.toPrecision(3)));
    return String(value);
  }

  function pager(total, state, redraw) {
    const pages = Math.max(1, Math.ceil(total / state.size));
    state.page = Math.min(state.page, pages - 1);
    const go = (page) => () => { state.page = page; redraw(); };
    return el("div", { class: "pager" },
      el("button", { type: "button", disabled: state.page === 0 ? "disabled" : null, on: { click: go(state.page - 1) } }, "‹ previous"),
      el("span", { class: "page", text: `page ${state.page + 1} of ${pages}` }),
      el("button", { type: "button", disabled: state.page >= pages - 1 ? "disabled" : null, on: { click: go(state.page + 1) } }, "next ›"));
  }

  function judgmentsOf(index) {
    const found = (data.judgments || {})[String(index)] || [];
    if (!found.length) return null;
    return el("ul", { class: "judgments" }, ...found.map((j) => el("li", null,
      el("strong", { text: `${j.scorer}: ${j.score === null || j.score === undefined ? "" : j.score}${j.pass === true ? " pass" : j.pass === false ? " fail" : ""}` }),
      " ", j.reason ? trusted(j.reason, "span") : null)));
  }

  function answerOf(row) {
    const extra = row[row.length - 1];
    if (extra.answer !== null && extra.answer !== undefined) return trusted(data.html[extra.answer], "div");
    return el("p", { class: "failed", text: `${row[statusColumn]}: ${extra.error}` });
  }

  // ---- header ---------------------------------------------------------------------------------------
  const counts = data.counts;
  root.append(el("h1", { text: data.title }),
    el("p", { class: "counts", id: "counts", text: `${counts.calls} call${counts.calls === 1 ? "" : "s"}: ${counts.ok} ok, ${counts.error} error, ${counts.skipped} skipped; spent ${counts.spent}.` }));
  if (data.about.length) root.append(el("ul", { class: "about" }, ...data.about.map((line) => trusted(line, "li"))));
  root.append(el("pre", { class: "command", text: data.command }));
  for (const warning of data.warnings) {
    const box = trusted(warning, "div");
    box.className = "warning";
    root.append(box);
  }
  const nav = el("nav");
  root.append(nav);

  // ---- summary, scores, cost ---------------------------------------------------------------------------
  if (data.summary) section("summary", "Summary", staticTable(data.summary));
  if (data.scores && data.scores.length) {
    section("scores", "Scores", ...data.scores.map((board) => el("div", { class: "board" },
      el("h3", { text: board.title }), staticTable(board), board.note ? el("p", { class: "note", text: board.note }) : null)));
  }
  if (data.cost) section("cost", "Cost by model and task", staticTable(data.cost));
  if (data.spread) section("spread", "Spread of repeated answers", staticTable(data.spread));
  if (data.plots.length) {
    section("plots", "Plots", el("div", { class: "plots" }, ...data.plots.map((plot) =>
      el("figure", null, el("img", { src: "data:image/png;base64," + plot.png, alt: plot.name }), el("figcaption", { text: plot.name })))));
  }
  data.sections.forEach((part, i) => {
    section("section-" + i, part.title, sortable(trusted(part.html, "div")));
  });

  // ---- every call: filter, sort, a page at a time ---------------------------------------------------------
  const calls = data.calls;
  const statusColumn = calls ? calls.columns.findIndex((c) => c.name === "status") : -1;
  if (calls) {
    const columns = calls.columns;
    const rows = calls.rows;
    const state = { filters: {}, search: "", sort: null, direction: 1, page: 0, size: 100 };
    const lowered = new Array(rows.length);
    const haystack = (i) => {
      if (lowered[i] === undefined) {
        const row = rows[i];
        const extra = row[row.length - 1];
        lowered[i] = [row[columns.findIndex((c) => c.name === "item")], extra.error,
          extra.answer !== null ? data.texts[extra.answer] : ""].join("\n").toLowerCase();
      }
      return lowered[i];
    };
    let view = rows.map((_, i) => i);
    // a column no call has a value in (no streaming, no cache hits, one step) is left out
    const always = new Set(["model", "task", "status", "answer"]);
    const visible = columns.map((_, c) => c).filter((c) => always.has(columns[c].name) ||
      rows.some((row) => row[c] !== null && row[c] !== undefined && row[c] !== ""));
    const opened = new Set();
    const body = el("tbody");
    const head = el("tr");
    const shownCount = el("span", { id: "calls-shown" });
    const pagerBox = el("div");

    const refilter = () => {
      const filters = Object.entries(state.filters).filter(([, value]) => value !== "");
      const search = state.search.toLowerCase();
      view = [];
      for (let i = 0; i < rows.length; i++) {
        const row = rows[i];
        if (filters.some(([column, value]) => shown(row[column], "text") !== value)) continue;
        if (search && !haystack(i).includes(search)) continue;
        view.push(i);
      }
      resort();
    };
    const resort = () => {
      if (state.sort !== null) {
        const column = state.sort;
        const asNumbers = columns[column].type !== "text";
        view.sort((a, b) => state.direction * compare(rows[a][column] ?? null, rows[b][column] ?? null, asNumbers) || a - b);
      }
      state.page = 0;
      redraw();
    };
    const redraw = () => {
      const start = state.page * state.size;
      const page = view.slice(start, start + state.size);
      const trs = [];
      for (const i of page) {
        const row = rows[i];
        const tr = el("tr", { class: "call " + (row[statusColumn] === "ok" ? "ok" : "bad"), "data-index": String(i) },
          ...visible.map((c) => {
            const text = shown(row[c], columns[c].type);
            return el("td", { class: columns[c].type !== "text" ? "num" : columns[c].name === "answer" ? "preview" : null,
                              title: columns[c].type === "text" && text.length > 24 ? text : null, text: text });
          }));
        tr.addEventListener("click", () => {
          if (opened.has(i)) opened.delete(i); else opened.add(i);
          redraw();
        });
        trs.push(tr);
        if (opened.has(i)) trs.push(detail(i));
      }
      body.replaceChildren(...trs);
      shownCount.textContent = `${view.length} of ${rows.length} calls`;
      pagerBox.replaceChildren(pager(view.length, state, redraw));
    };
    const detail = (i) => {
      const row = rows[i];
      const extra = row[row.length - 1];
      const facts = [["job", extra.job], ["finish", extra.finish], ["retries", extra.retries],
        ["reasoning tokens", extra.reasoning_tokens], ["note", extra.note]]
        .filter(([, v]) => v !== "" && v !== null && v !== undefined && v !== 0)
        .map(([k, v]) => `${k}: ${v}`).join(" · ");
      const raw = extra.answer !== null ? el("details", null, el("summary", { text: "the answer as plain text" }),
        el("pre", { class: "raw", text: data.texts[extra.answer] })) : null;
      // the model's thinking, where the API returned it: folded away, plain text, apart from the answer
      const thinking = extra.reasoning ? el("details", { class: "thinking" }, el("summary", { text: "thinking" }),
        el("pre", { class: "raw", text: extra.reasoning })) : null;
      return el("tr", { class: "detail" }, el("td", { colspan: String(visible.length) },
        facts ? el("p", { class: "facts", text: facts }) : null, thinking, el("div", { class: "answer" }, answerOf(row)),
        judgmentsOf(i), raw));
    };

    visible.forEach((c) => {
      const th = el("th", { "data-column": columns[c].name, title: "sort", text: columns[c].name, on: { click: () => {
        state.direction = state.sort === c ? -state.direction : 1;
        state.sort = c;
        for (const other of head.children) other.removeAttribute("aria-sort");
        th.setAttribute("aria-sort", state.direction > 0 ? "ascending" : "descending");
        resort();
      } } });
      head.append(th);
    });
    const controls = el("div", { class: "controls" });
    columns.forEach((column, c) => {
      if (!column.filter) return;
      const values = Array.from(new Set(rows.map((r) => shown(r[c], "text")))).sort((a, b) => compare(a, b, false));
      if (values.length < 2 && column.name !== "status" && column.name !== "model") return;
      const select = el("select", { "data-filter": column.name, on: { change: (event) => { state.filters[c] = event.target.value; refilter(); } } },
        el("option", { value: "", text: `${column.name}: all` }), ...values.map((v) => el("option", { value: v, text: v })));
      controls.append(el("label", null, select));
    });
    const search = el("input", { type: "search", id: "search", placeholder: "search items, answers, errors" });
    let typing = null;
    search.addEventListener("input", () => {
      clearTimeout(typing);
      typing = setTimeout(() => { state.search = search.value; refilter(); }, 150);
    });
    const size = el("select", { id: "page-size", on: { change: (event) => { state.size = Number(event.target.value); state.page = 0; redraw(); } } },
      ...[50, 100, 500, 1000].map((n) => el("option", { value: String(n), text: `${n} a page`, selected: n === state.size ? "selected" : null })));
    controls.append(search, size);
    section("calls", "Calls",
      el("p", { class: "note" }, el("span", { id: "calls-total", "data-count": String(rows.length), text: `${rows.length} calls` }),
        " (one row per call, as results.csv). Click a header to sort, a row to read the whole answer. Showing ", shownCount, "."),
      data.left_out ? el("p", { class: "note left-out", text: data.left_out }) : null, controls, el("div", { class: "scroll" }, el("table", { class: "data calls" }, el("thead", null, head), body)), pagerBox);
    redraw();
  }

  // ---- items side by side --------------------------------------------------------------------------------
  if (data.items.length) {
    const state = { page: 0, size: 10 };
    const box = el("div");
    const rows = calls.rows;
    const column = (name) => calls.columns.findIndex((c) => c.name === name);
    const [model, prompt, temperature] = [column("model"), column("prompt"), column("T")];
    const redraw = () => {
      const start = state.page * state.size;
      box.replaceChildren(pager(data.items.length, state, redraw), ...data.items.slice(start, start + state.size).map(([task, item, indexes, pictures]) =>
        el("article", { class: "item" }, el("h3", { text: `${task}: ${item}` }),
          pictures && pictures.length ? el("div", { class: "pictures" }, ...pictures.map(picture)) : null,
          el("div", { class: "side" }, ...indexes.map((i) =>
          el("div", { class: "card " + (rows[i][statusColumn] === "ok" ? "ok" : "bad"), "data-index": String(i) },
            el("div", { class: "who", text: `${rows[i][model]} · prompt ${rows[i][prompt]} · T=${rows[i][temperature]}` }),
            el("div", { class: "answer" }, answerOf(rows[i])), judgmentsOf(i)))))));
    };
    section("side-by-side", "Answers side by side",
      el("p", { class: "note", text: `${data.items.length} item${data.items.length === 1 ? "" : "s"}; each variant's first repeat, in full.` }),
      data.left_out ? el("p", { class: "note left-out", text: data.left_out }) : null, box);
    redraw();
  }

  // ---- conversations as chat bubbles ---------------------------------------------------------------------
  if (data.conversations.length) {
    const state = { page: 0, size: 5 };
    const box = el("div");
    const rows = calls.rows;
    const column = (name) => calls.columns.findIndex((c) => c.name === name);
    const [tokensIn, tokensOut, cost, step] = [column("in"), column("out"), column("cost"), column("step")];
    const speakers = {};
    const redraw = () => {
      const start = state.page * state.size;
      box.replaceChildren(pager(data.conversations.length, state, redraw), ...data.conversations.slice(start, start + state.size).map(([title, turns]) => {
        const bubbles = [];
        for (const [i, speaker, asked] of turns) {
          if (asked !== null) bubbles.push(el("div", { class: "bubble user" }, trusted(data.html[asked], "div")));
          if (!(speaker in speakers)) speakers[speaker] = Object.keys(speakers).length % 4;
          const row = rows[i];
          bubbles.push(el("div", { class: `bubble model tone${speakers[speaker]} ${row[statusColumn] === "ok" ? "" : "bad"}` },
            el("div", { class: "who", text: `${speaker} · ${row[step]}` }), answerOf(row),
            el("div", { class: "meta", text: `${shown(row[tokensIn], "number")} in · ${shown(row[tokensOut], "number")} out · ${shown(row[cost], "usd") || "n/a"}` })));
        }
        return el("article", { class: "conversation" }, el("h3", { text: title }), el("div", { class: "bubbles" }, ...bubbles));
      }));
    };
    section("conversations", "Conversations", box);
    redraw();
  }

  // ---- errors and config ---------------------------------------------------------------------------------
  if (data.errors && (data.errors.rows.length || data.errors.jobs.length)) {
    section("errors", "Errors",
      ...data.errors.jobs.map((job) => el("p", { class: "failed", text: `job ${job} crashed before it finished: its traceback is in ${job}/job_error.txt` })),
      data.errors.rows.length ? staticTable(data.errors) : null);
  }
  if (data.config) {
    section("config", "Config", el("details", null, el("summary", { text: "config of the first job" }), el("pre", { text: data.config })));
  }
  document.body.dataset.ready = "true";
})();
