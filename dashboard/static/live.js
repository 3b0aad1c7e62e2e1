// Live board and "my call": poll the JSON, draw with textContent only, tick the timers.
// Timers count from the server's start time using the server's "now", so a wrong clock
// on the agent's computer (or an injected clock in tests) never shifts them. Each phase has
// its own marks from the server (waiting: the answer target; talking: 3 and 5 minutes);
// time in the menu is not graded.
(function () {
  "use strict";

  var root = document.getElementById("live");
  if (!root) { return; }
  var url = root.getAttribute("data-url");
  var pollMs = parseInt(root.getAttribute("data-poll-ms"), 10) || 2000;
  var view = root.getAttribute("data-view");
  var status = document.getElementById("live-status");
  var offsetMs = 0;
  var marks = {};
  var shownCall = null;

  function el(tag, cls, text) {
    var node = document.createElement(tag);
    if (cls) { node.className = cls; }
    if (text !== undefined && text !== null) { node.textContent = String(text); }
    return node;
  }

  function link(href, text, cls) {
    var a = el("a", cls, text);
    a.setAttribute("href", href);
    return a;
  }

  function clock(seconds) {
    var s = Math.max(0, Math.floor(seconds));
    var h = Math.floor(s / 3600);
    var m = Math.floor((s % 3600) / 60);
    var r = s % 60;
    var mm = h ? (m < 10 ? "0" + m : m) : m;
    return (h ? h + ":" : "") + mm + ":" + (r < 10 ? "0" + r : r);
  }

  function stateOf(phase, seconds) {
    var limits = marks[phase];
    if (!limits) { return "none"; }
    if (seconds > limits.red_seconds) { return "red"; }
    if (seconds > limits.amber_seconds) { return "amber"; }
    return "ok";
  }

  function tick() {
    var now = Date.now() + offsetMs;
    var timers = root.querySelectorAll("[data-started-ms]");
    for (var i = 0; i < timers.length; i++) {
      var node = timers[i];
      var seconds = (now - Number(node.getAttribute("data-started-ms"))) / 1000;
      var state = stateOf(node.getAttribute("data-phase"), seconds);
      node.querySelector(".timer-value").textContent = clock(seconds);
      node.className = "timer timer-" + state;
      node.setAttribute("data-state", state);
    }
  }

  function timer(call) {
    var box = el("span", "timer timer-" + call.timer.state);
    box.setAttribute("data-started-ms", call.timer.started_ms);
    box.setAttribute("data-phase", call.timer.phase);
    box.setAttribute("data-state", call.timer.state);
    box.appendChild(el("span", "timer-value", clock(call.timer.elapsed_seconds)));
    box.appendChild(el("span", "timer-phase", call.timer.label));
    return box;
  }

  function callerCell(call) {
    var td = el("td", "caller");
    td.appendChild(el("div", "caller-number", call.caller.display || "номер скрыт"));
    if (call.caller.name) { td.appendChild(el("div", "caller-name", call.caller.name)); }
    return td;
  }

  function customerCell(call) {
    var td = el("td", "customer");
    if (!call.customer) {
      td.appendChild(el("span", "muted", "не опознан"));
      return td;
    }
    td.appendChild(link(call.customer.url, call.customer.organisation, "org"));
    var contact = [call.customer.contact, call.customer.email].filter(Boolean).join(" · ");
    if (contact) { td.appendChild(el("div", "contact", contact)); }
    td.appendChild(el("div", "muted", "клиент № " + call.customer.number));
    return td;
  }

  // The decision's evidence in words; ``brief`` keeps the day and what the decision rests on.
  function evidenceList(call, brief) {
    var lines = (call.decision.evidence || []).filter(function (line) {
      return !brief || line.applied || line.kind === "day";
    });
    var list = el("ul", "evidence");
    lines.forEach(function (line) {
      var li = el("li");
      li.appendChild(el(line.applied ? "strong" : "span", null, line.text));
      list.appendChild(li);
    });
    return lines.length ? list : null;
  }

  function decisionCell(call) {
    var td = el("td", "decision");
    td.appendChild(el("span", "badge badge-" + call.decision.tone, call.decision.label));
    if (call.decision.explanation) {
      td.appendChild(el("div", "explanation", call.decision.explanation));
    }
    var facts = evidenceList(call, true);
    if (facts) { td.appendChild(facts); }
    return td;
  }

  function choiceCell(call) {
    var td = el("td", "choice");
    var cls = call.topic.code === "bug" ? "topic topic-bug" : "topic";
    td.appendChild(el("div", cls, call.topic.code ? call.topic.label : "ещё в меню"));
    if (call.digits) { td.appendChild(el("div", "digits", "цифры: " + call.digits)); }
    return td;
  }

  function recentList(items) {
    if (!items.length) { return el("span", "muted", "первый звонок"); }
    var list = el("ul", "recent");
    items.forEach(function (item) {
      var li = el("li");
      li.appendChild(link(item.url, item.at));
      li.appendChild(document.createTextNode(" " + item.status_label + ", " + item.decision_label));
      list.appendChild(li);
    });
    return list;
  }

  function row(call) {
    var tr = el("tr", "call status-" + call.status);
    tr.setAttribute("data-call-id", call.id);
    var first = el("td", "col-timer");
    first.appendChild(timer(call));
    first.appendChild(link(call.url, call.status_label, "status"));
    tr.appendChild(first);
    tr.appendChild(callerCell(call));
    tr.appendChild(customerCell(call));
    tr.appendChild(decisionCell(call));
    tr.appendChild(choiceCell(call));
    tr.appendChild(el("td", "agent", call.agent || "—"));
    var recent = el("td", "recent-cell");
    recent.appendChild(recentList(call.recent));
    tr.appendChild(recent);
    return tr;
  }

  // Callers waiting for a call-back, each in its place among the callers waiting in the
  // queue: before the first waiting call that started waiting after it arrived. Their timer
  // is a wait, counted from that place.
  function callbackRow(item) {
    var tr = el("tr", "call callback-request");
    tr.setAttribute("data-request-id", item.id);
    var first = el("td", "col-timer");
    var box = el("span", "timer");
    box.setAttribute("data-started-ms", item.place_ms);
    box.setAttribute("data-phase", "wait");
    box.appendChild(el("span", "timer-value", ""));
    box.appendChild(el("span", "timer-phase", "ждёт перезвона"));
    first.appendChild(box);
    first.appendChild(link(item.url, "Перезвонить", "status"));
    tr.appendChild(first);
    var caller = el("td", "caller");
    caller.appendChild(el("div", "caller-number", item.caller || "номер скрыт"));
    tr.appendChild(caller);
    tr.appendChild(el("td", "customer", item.organisation || "не опознан"));
    var note = el("td", "decision");
    note.setAttribute("colspan", "4");
    note.textContent = "Просит перезвонить, очередь сохранена" +
      (item.attempts ? " · попыток: " + item.attempts : "");
    tr.appendChild(note);
    return tr;
  }

  function placeCallbacks(body, callbacks) {
    callbacks.forEach(function (item) {
      var rows = body.querySelectorAll("tr");
      var after = null;
      for (var i = 0; i < rows.length; i++) {
        var timerNode = rows[i].querySelector("[data-started-ms]");
        if (!timerNode || timerNode.getAttribute("data-phase") !== "wait") { continue; }
        if (Number(timerNode.getAttribute("data-started-ms")) > item.place_ms) {
          body.insertBefore(callbackRow(item), rows[i]);
          return;
        }
        after = rows[i];
      }
      body.insertBefore(callbackRow(item), after ? after.nextSibling : null);
    });
  }

  function drawBoard(data) {
    var body = document.getElementById("live-rows");
    var rows = document.createDocumentFragment();
    data.calls.forEach(function (call) { rows.appendChild(row(call)); });
    body.replaceChildren(rows);
    placeCallbacks(body, data.callbacks || []);
    document.getElementById("live-count").textContent = "(" + data.calls.length + ")";
    document.getElementById("live-empty").hidden = body.children.length > 0;
  }

  function card(call) {
    var box = el("article", "card pop-card");
    box.setAttribute("data-call-id", call.id);
    var head = el("div", "pop-head");
    head.appendChild(timer(call));
    head.appendChild(el("span", "badge badge-" + call.decision.tone, call.decision.label));
    box.appendChild(head);
    if (call.customer) {
      box.appendChild(link(call.customer.url, call.customer.organisation, "pop-org"));
      var contact = [call.customer.contact, call.customer.email].filter(Boolean).join(" · ");
      box.appendChild(el("div", "pop-contact", contact + " · клиент № " + call.customer.number));
    } else {
      box.appendChild(el("div", "pop-org", "Звонящий не опознан"));
    }
    box.appendChild(el("div", "pop-explanation", call.decision.explanation));
    var evidence = evidenceList(call, false);
    if (evidence) {
      box.appendChild(el("h3", null, "На чём основано решение"));
      box.appendChild(evidence);
    }
    var facts = el("dl", "facts");
    [["Номер", call.caller.display || "скрыт"], ["Имя в Caller ID", call.caller.name || "—"],
      ["Выбор в меню", call.topic.code ? call.topic.label : "—"],
      ["Введённые цифры", call.digits || "—"]].forEach(function (pair) {
      facts.appendChild(el("dt", null, pair[0]));
      facts.appendChild(el("dd", pair[0] === "Выбор в меню" && call.topic.code === "bug"
        ? "topic-bug" : null, pair[1]));
    });
    box.appendChild(facts);
    box.appendChild(el("h3", null, "Прошлые звонки"));
    box.appendChild(recentList(call.recent));
    box.appendChild(link(call.url + "#wrapup", "Итоги звонка →", "button"));
    return box;
  }

  function drawMine(data) {
    var holder = document.getElementById("mine-call");
    var idle = document.getElementById("mine-idle");
    var last = document.getElementById("mine-last");
    if (data.call) {
      if (shownCall !== data.call.id) {
        holder.replaceChildren(card(data.call));
        holder.classList.remove("popped");
        void holder.offsetWidth;  // restart the attention animation
        holder.classList.add("popped");
        shownCall = data.call.id;
        document.title = "☎ " + (data.call.customer ? data.call.customer.organisation
          : data.call.caller.display || "номер скрыт") + " — мой звонок";
      }
      holder.hidden = false;
      idle.hidden = true;
    } else {
      holder.hidden = true;
      holder.replaceChildren();
      shownCall = null;
      idle.hidden = false;
      document.title = "Мой звонок — поддержка OneRPA";
    }
    last.replaceChildren();
    last.hidden = !data.last || !!data.call;
    if (data.last && !data.call) {
      last.appendChild(document.createTextNode("Последний звонок: "));
      last.appendChild(link(data.last.url,
        data.last.organisation || data.last.caller || "номер скрыт"));
      last.appendChild(document.createTextNode(data.last.wrapped_up ? " — итоги записаны."
        : " — запишите итоги."));
    }
  }

  function poll() {
    fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (response) {
        if (response.status === 401) { window.location.reload(); throw new Error("signed out"); }
        if (!response.ok) { throw new Error("HTTP " + response.status); }
        return response.json();
      })
      .then(function (data) {
        offsetMs = data.now_ms - Date.now();
        marks = data.thresholds;
        if (view === "mine") { drawMine(data); } else { drawBoard(data); }
        tick();
        status.textContent = "обновлено " + data.now_local;  // the line's time zone
        status.classList.remove("stale");
      })
      .catch(function () {
        status.textContent = "нет связи с сервером, повторяем…";
        status.classList.add("stale");
      })
      .finally(function () { window.setTimeout(poll, pollMs); });
  }

  poll();
  window.setInterval(tick, 500);
})();

// The queue and the agents (the board's "Очередь и агенты" panel), live from Asterisk over
// AMI through /api/line. Separate from the calls above: its own poll, its own failures.
(function () {
  "use strict";

  var root = document.getElementById("line");
  if (!root) { return; }
  var url = root.getAttribute("data-url");
  var pollMs = parseInt(root.getAttribute("data-poll-ms"), 10) || 2000;
  var offsetMs = 0;

  function el(tag, cls, text) {
    var node = document.createElement(tag);
    if (cls) { node.className = cls; }
    if (text !== undefined && text !== null) { node.textContent = String(text); }
    return node;
  }

  function clock(seconds) {
    var s = Math.max(0, Math.floor(seconds));
    var m = Math.floor(s / 60);
    var r = s % 60;
    return m + ":" + (r < 10 ? "0" + r : r);
  }

  function since(ms) {
    return clock((Date.now() + offsetMs - ms) / 1000);
  }

  function callerRow(caller) {
    var tr = el("tr", "caller");
    tr.setAttribute("data-wait-state", caller.wait_state);
    tr.appendChild(el("td", "position", caller.position));
    var who = el("td", "caller-number", caller.number);
    if (caller.name) { who.appendChild(el("span", "caller-name muted", " " + caller.name)); }
    tr.appendChild(who);
    tr.appendChild(el("td", "timer timer-" + caller.wait_state, clock(caller.wait_seconds)));
    return tr;
  }

  function agentRow(agent) {
    var tr = el("tr", "agent state-" + agent.state);
    tr.setAttribute("data-state", agent.state);
    tr.setAttribute("data-interface", agent.interface);
    tr.appendChild(el("td", "agent-name", agent.name));
    var state = el("td", "agent-state", agent.state_label);
    if (agent.reason) { state.appendChild(el("span", "agent-reason", " · " + agent.reason.label)); }
    if (agent["with"]) { state.appendChild(el("span", "agent-with", " · " + agent["with"])); }
    tr.appendChild(state);
    tr.appendChild(el("td", "agent-since", agent.since_ms ? since(agent.since_ms) : ""));
    return tr;
  }

  function draw(data) {
    offsetMs = data.now_ms - Date.now();
    var error = document.getElementById("line-error");
    var callers = document.getElementById("line-callers");
    var agents = document.getElementById("line-agents");
    root.setAttribute("data-ok", data.ok ? "yes" : "no");
    error.hidden = data.ok;
    error.textContent = data.ok ? "" : data.error_text;
    callers.replaceChildren();
    agents.replaceChildren();
    if (!data.ok) {
      document.getElementById("line-summary").textContent = "";
      document.getElementById("line-empty").hidden = true;
      return;
    }
    data.callers.forEach(function (c) { callers.appendChild(callerRow(c)); });
    data.agents.forEach(function (a) { agents.appendChild(agentRow(a)); });
    document.getElementById("line-empty").hidden = data.callers.length > 0;
    var s = data.summary;
    var text = "ждут: " + s.waiting + " · дольше всех: " + clock(s.longest_wait_seconds) +
      " · свободных агентов: " + s.free_agents;
    if (s.callers_per_free_agent !== null) { text += " · звонящих на свободного: " + s.callers_per_free_agent; }
    var summary = document.getElementById("line-summary");
    summary.textContent = text;
    summary.setAttribute("data-longest-state", s.longest_wait_state);
  }

  function poll() {
    fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (response) {
        if (!response.ok) { throw new Error("HTTP " + response.status); }
        return response.json();
      })
      .then(draw)
      .catch(function () {
        var error = document.getElementById("line-error");
        error.hidden = false;
        error.textContent = "Нет связи с панелью: данные могут быть устаревшими.";
      })
      .finally(function () { window.setTimeout(poll, pollMs); });
  }

  poll();
}());
