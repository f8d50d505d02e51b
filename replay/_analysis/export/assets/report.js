/* agent-replay report: draws the embedded run data. No network, no innerHTML of data:
   every value is set with textContent. Long lists are virtualised (only visible rows exist). */
(function () {
  "use strict";
  var DATA = JSON.parse(document.getElementById("report-data").textContent);
  var S = DATA.strings;
  var RUNS = DATA.runs;
  var ROW = 24;

  function str(v) { return (v && typeof v === "object" && "$s" in v) ? S[v.$s] : v; }
  function deref(v) {
    if (Array.isArray(v)) { return v.map(deref); }
    if (v && typeof v === "object") {
      if ("$s" in v && Object.keys(v).length === 1) { return S[v.$s]; }
      var o = {};
      Object.keys(v).forEach(function (k) { o[k] = deref(v[k]); });
      return o;
    }
    return v;
  }
  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) { e.className = cls; }
    if (text !== undefined && text !== null) { e.textContent = String(text); }
    return e;
  }
  function ms(ns) { return (ns / 1e6).toFixed(ns < 1e7 ? 2 : 1) + " ms"; }
  function money(c) { return c === null || c === undefined ? "n/a" : "$" + Number(c).toFixed(c < 0.01 ? 5 : 3); }
  function tokens(u) { return u ? (u["in"] + u.out) + " tok" : ""; }

  // -- per-run indexes ---------------------------------------------------------------
  RUNS.forEach(function (run) {
    var e = run.events;
    run.n = e.seq.length;
    run.bySeq = {};
    for (var i = 0; i < run.n; i++) { run.bySeq[e.seq[i]] = i; }
    run.callBySeq = {};
    run.conversation.forEach(function (c) { run.callBySeq[c.seq] = c; });
    run.open = {};
    run.steps.forEach(function (st) { run.open[st.index] = run.n <= 2000; });
  });

  function kindOf(ch) {
    if (ch.indexOf("tool:") === 0) { return "tool"; }
    if (ch.indexOf("http") === 0) { return "http"; }
    if (ch === "clock" || ch === "random" || ch === "uuid" || ch === "sleep") { return "noise"; }
    return "other";
  }

  // -- the header ----------------------------------------------------------------------
  function card(run, label) {
    var c = el("div", "card");
    c.appendChild(el("b", null, label + ": " + run.name));
    c.appendChild(el("br"));
    var u = run.usage;
    [["created", run.created], ["events", run.n], ["steps", run.steps.length],
     ["model calls", u.calls], ["tokens in", u.input_tokens], ["tokens out", u.output_tokens],
     ["cost", money(u.cost_usd) + (u.unpriced_calls ? " (+" + u.unpriced_calls + " unpriced)" : "")],
     ["duration", ms(run.end)]].forEach(function (kv) {
      var s = el("span", "kv", kv[0] + " ");
      s.appendChild(el("span", null, kv[1]));
      c.appendChild(s);
    });
    if (run.damage) { c.appendChild(el("div", "damage", "damaged: " + run.damage)); }
    return c;
  }
  var runsBox = document.getElementById("runs");
  RUNS.forEach(function (run, i) { runsBox.appendChild(card(run, RUNS.length > 1 ? (i ? "right" : "left") : "run")); });

  // -- a virtual list -------------------------------------------------------------------
  function VList(count, render) {
    var box = el("div", "vlist");
    var spacer = el("div");
    spacer.style.height = (count * ROW) + "px";
    box.appendChild(spacer);
    var drawn = {};
    var pending = false;
    function draw() {
      pending = false;
      var first = Math.max(0, Math.floor(box.scrollTop / ROW) - 10);
      var last = Math.min(count, Math.ceil((box.scrollTop + (box.clientHeight || 800)) / ROW) + 10);
      Object.keys(drawn).forEach(function (k) {
        if (k < first || k >= last) { box.removeChild(drawn[k]); delete drawn[k]; }
      });
      for (var i = first; i < last; i++) {
        if (drawn[i]) { continue; }
        var row = render(i);
        row.classList.add("vrow");
        row.style.top = (i * ROW) + "px";
        box.appendChild(row);
        drawn[i] = row;
      }
    }
    box.addEventListener("scroll", function () {
      if (!pending) { pending = true; window.requestAnimationFrame(draw); }
    });
    return { el: box, draw: draw, scrollTo: function (i) { box.scrollTop = Math.max(0, i * ROW - 60); draw(); } };
  }

  function waterfall(run, start, dur, cls) {
    var wf = el("div", "wf");
    var bar = el("div", "bar " + cls);
    var end = run.end || 1;
    bar.style.left = (100 * start / end) + "%";
    bar.style.width = (100 * dur / end) + "%";
    wf.title = ms(start) + " + " + ms(dur);
    wf.appendChild(bar);
    return wf;
  }

  // -- the detail pane ------------------------------------------------------------------
  var detail = document.getElementById("detail");
  var selected = null;
  function pretty(v) {
    v = deref(v);
    if (typeof v === "string") { return v; }
    return JSON.stringify(v, null, 2);
  }
  function section(title, value, open) {
    var d = el("details");
    d.appendChild(el("summary", null, title));
    var drawn = false;
    function fill() { if (!drawn) { drawn = true; d.appendChild(el("pre", null, pretty(value))); } }
    d.addEventListener("toggle", function () { if (d.open) { fill(); } });
    if (open) { d.open = true; fill(); }
    return d;
  }
  function showEvent(r, i) {
    var run = RUNS[r];
    var e = run.events;
    selected = { run: r, seq: e.seq[i] };
    detail.textContent = "";
    var box = el("div", "detail");
    box.id = "event-detail";
    box.appendChild(el("h2", null, (RUNS.length > 1 ? (r ? "right " : "left ") : "") + "#" + e.seq[i] + " " + e.channel[i]));
    var facts = el("dl", "facts");
    function fact(k, v) { if (v !== null && v !== undefined && v !== "") { facts.appendChild(el("dt", null, k)); facts.appendChild(el("dd", null, v)); } }
    fact("task", e.task[i]);
    fact("step", e.step[i]);
    fact("start", ms(e.start[i]));
    fact("duration", ms(e.dur[i]));
    fact("inside", e.parent[i] === null ? "" : "#" + e.parent[i]);
    fact("site", str(e.site[i]));
    fact("summary", str(e.summary[i]));
    var call = run.callBySeq[e.seq[i]];
    if (call) {
      fact("model", call.model + (call.served && call.served !== call.model ? " (served " + call.served + ")" : ""));
      if (call.usage) { fact("tokens", call.usage["in"] + " in, " + call.usage.out + " out, " + call.usage.cached + " cached"); fact("cost", money(call.usage.cost)); }
      fact("finish", call.finish.join(", "));
    }
    box.appendChild(facts);
    if (call) { box.appendChild(section("answer", str(call.output), true)); }
    var p = run.payloads[i];
    ["request", "response", "error", "meta"].forEach(function (k) {
      if (p && k in p) { box.appendChild(section(k, p[k], k === "error")); }
    });
    detail.appendChild(box);
    document.querySelectorAll(".vrow.sel").forEach(function (n) { n.classList.remove("sel"); });
  }

  function eventRow(run, r, i, depth) {
    var e = run.events;
    var row = el("div", (e.err[i] ? "err " : "") + (e.lib[i] ? "lib" : ""));
    row.dataset.seq = e.seq[i];
    if (selected && selected.run === r && selected.seq === e.seq[i]) { row.classList.add("sel"); }
    var seq = el("span", "seq", "#" + e.seq[i]);
    seq.style.paddingLeft = (depth * 14) + "px";
    row.appendChild(seq);
    row.appendChild(el("span", "ch", e.channel[i]));
    row.appendChild(el("span", "name", str(e.summary[i])));
    row.appendChild(el("span", "num", ms(e.dur[i])));
    var call = run.callBySeq[e.seq[i]];
    row.appendChild(el("span", "num", call ? tokens(call.usage) : ""));
    row.appendChild(waterfall(run, e.start[i], e.dur[i], e.err[i] ? "err" : (call ? "model" : kindOf(e.channel[i]))));
    row.addEventListener("click", function () { showEvent(r, i); row.classList.add("sel"); });
    return row;
  }

  // -- steps: a tree with a waterfall -----------------------------------------------------
  function stepRows(run) {
    var rows = [];
    run.steps.forEach(function (st) {
      rows.push({ step: st });
      if (!run.open[st.index]) { return; }
      var inStep = {};
      st.events.forEach(function (s) { inStep[s] = true; });
      st.events.forEach(function (s) {
        var i = run.bySeq[s];
        var depth = 1;
        var p = run.events.parent[i];
        while (p !== null && inStep[p] && depth < 20) { depth++; p = run.events.parent[run.bySeq[p]]; }
        rows.push({ event: i, depth: depth });
      });
    });
    return rows;
  }
  function stepsView(view, r) {
    var run = RUNS[r];
    var bar = el("div", "toolbar");
    var all = el("button", null, "expand all");
    var none = el("button", null, "collapse all");
    bar.appendChild(el("span", null, run.steps.length + " steps, " + run.n + " events"));
    bar.appendChild(all);
    bar.appendChild(none);
    view.appendChild(bar);
    var holder = el("div", "vlist-holder");
    holder.style.cssText = "flex:1;display:flex;min-height:0";
    view.appendChild(holder);
    var list = null;
    function build() {
      var rows = stepRows(run);
      var keep = list ? list.el.scrollTop : 0;
      holder.textContent = "";
      list = VList(rows.length, function (k) {
        var it = rows[k];
        if (it.event !== undefined) { return eventRow(run, r, it.event, it.depth); }
        var st = it.step;
        var row = el("div", "step");
        row.id = "step-" + r + "-" + st.index;
        var tw = el("span", "twisty", run.open[st.index] ? "\u25be" : "\u25b8");
        row.appendChild(tw);
        row.appendChild(el("span", "name", "step " + st.index + ": " + st.name + " (" + st.events.length + " events)"));
        row.appendChild(el("span", "num", ms(st.end - st.start)));
        row.appendChild(el("span", "num", tokens(st.usage)));
        row.appendChild(el("span", "num", st.usage ? money(st.usage.cost) : ""));
        row.appendChild(el("span", "num", "\u03a3 " + money(st.total ? st.total.cost : null)));
        row.appendChild(waterfall(run, st.start, st.end - st.start, "step"));
        row.addEventListener("click", function () { run.open[st.index] = !run.open[st.index]; build(); });
        return row;
      });
      holder.appendChild(list.el);
      list.el.scrollTop = keep;
      list.draw();
    }
    all.addEventListener("click", function () { run.steps.forEach(function (s) { run.open[s.index] = true; }); build(); });
    none.addEventListener("click", function () { run.steps.forEach(function (s) { run.open[s.index] = false; }); build(); });
    build();
  }

  // -- events: every event, filtered --------------------------------------------------------
  function eventsView(view, r) {
    var run = RUNS[r];
    var bar = el("div", "toolbar");
    var q = el("input");
    q.type = "search";
    q.placeholder = "filter: channel or text";
    var libs = el("input");
    libs.type = "checkbox";
    var lab = el("label", null, " library reads");
    lab.insertBefore(libs, lab.firstChild);
    var count = el("span");
    bar.appendChild(q); bar.appendChild(lab); bar.appendChild(count);
    view.appendChild(bar);
    var holder = el("div");
    holder.style.cssText = "flex:1;display:flex;min-height:0";
    view.appendChild(holder);
    function build() {
      var needle = q.value.toLowerCase();
      var idx = [];
      var e = run.events;
      for (var i = 0; i < run.n; i++) {
        if (e.lib[i] && !libs.checked) { continue; }
        if (needle && (e.channel[i] + " " + str(e.summary[i])).toLowerCase().indexOf(needle) < 0) { continue; }
        idx.push(i);
      }
      count.textContent = idx.length + " of " + run.n + " events";
      holder.textContent = "";
      var list = VList(idx.length, function (k) { return eventRow(run, r, idx[k], 0); });
      holder.appendChild(list.el);
      list.draw();
    }
    var timer = null;
    q.addEventListener("input", function () { clearTimeout(timer); timer = setTimeout(build, 150); });
    libs.addEventListener("change", build);
    build();
  }

  // -- the conversation ------------------------------------------------------------------------
  function conversationView(view, r) {
    var run = RUNS[r];
    var box = el("div", "conv");
    view.appendChild(box);
    var shown = 0;
    var PAGE = 50;
    function msg(role, text, cls) {
      var m = el("div", "msg " + (cls || role));
      m.appendChild(el("span", "role", role));
      m.appendChild(document.createTextNode(text));
      return m;
    }
    function more() {
      var calls = run.conversation;
      var stop = Math.min(calls.length, shown + PAGE);
      for (var k = shown; k < stop; k++) {
        var c = calls[k];
        var prev = k ? calls[k - 1].messages : [];
        var same = 0;
        while (same < prev.length && same < c.messages.length && prev[same][0] === c.messages[same][0]
               && str(prev[same][1]) === str(c.messages[same][1])) { same++; }
        var div = el("div", "call");
        div.id = "call-" + r + "-" + c.seq;
        var head = el("div", "head", "#" + c.seq + "  step " + c.step + "  " + c.model + "  " +
          (c.usage ? c.usage["in"] + " in / " + c.usage.out + " out  " + money(c.usage.cost) : "") +
          (same ? "  (" + same + " earlier messages)" : ""));
        head.addEventListener("click", (function (seq) { return function () { showEvent(r, run.bySeq[seq]); }; })(c.seq));
        div.appendChild(head);
        if (!same && str(c.system)) { div.appendChild(msg("system", str(c.system))); }
        for (var j = same; j < c.messages.length; j++) { div.appendChild(msg(c.messages[j][0], str(c.messages[j][1]))); }
        div.appendChild(msg("answer" + (c.finish.length ? " (" + c.finish.join(", ") + ")" : ""), str(c.output), "answer"));
        box.appendChild(div);
      }
      shown = stop;
      var old = box.querySelector(".more");
      if (old) { box.removeChild(old); }
      if (shown < calls.length) {
        var b = el("button", "more", "show " + Math.min(PAGE, calls.length - shown) + " more of " + (calls.length - shown));
        b.addEventListener("click", more);
        box.appendChild(b);
      }
    }
    if (!run.conversation.length) { box.appendChild(el("p", "hint", "This run made no model calls.")); }
    more();
  }

  // -- the step-aligned diff --------------------------------------------------------------------
  var MARK = { "same": "=", "changed": "~", "only-left": "-", "only-right": "+" };
  function diffView(view) {
    var d = DATA.diff;
    var bar = el("div", "toolbar");
    var c = d.counts;
    bar.appendChild(el("span", null, Object.keys(c).filter(function (k) { return c[k]; })
      .map(function (k) { return c[k] + " " + k; }).join(", ") + " steps"));
    var summary = el("span", "badge", d.first === null ? "no divergence" :
      "first divergence: step pair " + d.first + ": " + str(d.pairs[d.first].what));
    summary.id = "first-divergence-summary";
    bar.appendChild(summary);
    view.appendChild(bar);
    var box = el("div", "diff");
    view.appendChild(box);
    function rowsOf(p, holder) {
      p.rows.forEach(function (row) {
        var div = el("div", "erow" + (row.differs ? "" : " noise"));
        function link(r, seq) {
          if (seq === null) { return el("span", null, "-"); }
          var a = el("a", null, (r ? "right #" : "left #") + seq);
          a.addEventListener("click", function () { showEvent(r, RUNS[r].bySeq[seq]); });
          return a;
        }
        div.appendChild(link(0, row.left));
        div.appendChild(document.createTextNode(" / "));
        div.appendChild(link(1, row.right));
        div.appendChild(document.createTextNode("  " + row.channel + " [" + row.kind + "] " + str(row.what)));
        if (row.changes.length) {
          var t = el("table", "changes");
          row.changes.slice(0, 50).forEach(function (ch) {
            var tr = el("tr", ch[4] === "noise" ? "noise" : "");
            tr.appendChild(el("td", null, ch[0] || "(value)"));
            tr.appendChild(el("td", null, ch[4]));
            tr.appendChild(el("td", "old", ch[1] === "added" ? "" : str(ch[2])));
            tr.appendChild(el("td", "new", ch[1] === "removed" ? "" : str(ch[3])));
            t.appendChild(tr);
          });
          div.appendChild(t);
        }
        ["prompt_diff", "output_diff"].forEach(function (k) {
          if (str(row[k])) { div.appendChild(section(k.replace("_", " "), str(row[k]), row.differs)); }
        });
        holder.appendChild(div);
      });
    }
    var shown = 0;
    var PAGE = 200;
    function pairEl(p, k) {
      var div = el("div", "pair " + p.status + (k === d.first ? " first-divergence" : ""));
      div.id = "pair-" + k;
      var line = el("div", "line");
      line.appendChild(el("span", "mark", MARK[p.status] || "?"));
      line.appendChild(el("span", "side", p.left === null ? "" : "step " + p.left + ": " + RUNS[0].steps[p.left].name));
      line.appendChild(el("span", "side", p.right === null ? "" : "step " + p.right + ": " + RUNS[1].steps[p.right].name));
      line.appendChild(el("span", "what", str(p.what) + (p.kind !== "same" ? " [" + p.kind + "]" : "")));
      if (k === d.first) { line.appendChild(el("span", "badge", "first divergence")); }
      div.appendChild(line);
      var rows = null;
      function toggle() {
        if (rows) { div.removeChild(rows); rows = null; return; }
        rows = el("div", "rows");
        if (!p.rows.length) { rows.appendChild(el("div", "hint", "no event differs")); }
        rowsOf(p, rows);
        div.appendChild(rows);
      }
      line.addEventListener("click", toggle);
      if (k === d.first) { toggle(); }
      return div;
    }
    function more() {
      var stop = Math.min(d.pairs.length, Math.max(shown + PAGE, d.first === null ? 0 : d.first + 20));
      for (var k = shown; k < stop; k++) { box.appendChild(pairEl(d.pairs[k], k)); }
      shown = stop;
      var old = box.querySelector(".more");
      if (old) { box.removeChild(old); }
      if (shown < d.pairs.length) {
        var b = el("button", "more", "show more (" + (d.pairs.length - shown) + " left)");
        b.addEventListener("click", more);
        box.appendChild(b);
      }
    }
    more();
    if (d.first !== null) {
      var first = document.getElementById("pair-" + d.first);
      if (first && first.scrollIntoView) { first.scrollIntoView({ block: "center" }); }
      var firstRow = d.pairs[d.first].rows.filter(function (x) { return x.differs; })[0];
      if (firstRow) {
        var side = firstRow.right !== null ? 1 : 0;
        var seq = side ? firstRow.right : firstRow.left;
        showEvent(side, RUNS[side].bySeq[seq]);
      }
    }
  }

  // -- tabs ----------------------------------------------------------------------------------------
  var TABS = [["steps", "Steps", function (v) { stepsView(v, 0); }],
              ["events", "Events", function (v) { eventsView(v, 0); }],
              ["conversation", "Conversation", function (v) { conversationView(v, 0); }]];
  if (RUNS.length > 1) {
    TABS.push(["steps-right", "Steps (right)", function (v) { stepsView(v, 1); }]);
    TABS.push(["conversation-right", "Conversation (right)", function (v) { conversationView(v, 1); }]);
  }
  if (DATA.diff) { TABS.unshift(["diff", "Diff", diffView]); }
  var nav = document.getElementById("tabs");
  var view = document.getElementById("view");
  function open(name) {
    var tab = TABS.filter(function (t) { return t[0] === name; })[0] || TABS[0];
    nav.querySelectorAll("button").forEach(function (b) { b.classList.toggle("on", b.dataset.tab === tab[0]); });
    view.textContent = "";
    view.dataset.tab = tab[0];
    tab[2](view);
  }
  TABS.forEach(function (t) {
    var b = el("button", null, t[1]);
    b.dataset.tab = t[0];
    b.addEventListener("click", function () { if (window.history && history.replaceState) { history.replaceState(null, "", "#" + t[0]); } open(t[0]); });
    nav.appendChild(b);
  });
  var hash = (window.location.hash || "").slice(1);
  var m = /^event-(\d+)$/.exec(hash);
  open(m ? "events" : hash);
  if (m && RUNS[0].bySeq[m[1]] !== undefined) { showEvent(0, RUNS[0].bySeq[m[1]]); }
  document.body.dataset.ready = "1";
})();
