// Live log: server-sent events appended to the list the server rendered; no framework, no external assets.
"use strict";
(function () {
  const log = document.getElementById("log");
  if (!log || !window.EventSource) return;
  const state = document.getElementById("live-state");
  const params = new URLSearchParams();
  if (log.dataset.service) params.set("service", log.dataset.service);
  params.set("level", log.dataset.level || "INFO");
  const last = log.lastElementChild;
  params.set("after", last ? last.dataset.id : "0");
  const source = new EventSource("/logs/stream?" + params.toString());
  source.onopen = function () { state.textContent = state.dataset.connected; };
  source.onerror = function () { state.textContent = state.dataset.disconnected; };
  source.onmessage = function (event) {
    const line = JSON.parse(event.data);
    if (log.querySelector('[data-id="' + line.id + '"]')) return;
    const item = document.createElement("li");
    item.className = "lvl-" + line.level;
    item.dataset.id = line.id;
    const time = document.createElement("time");
    time.textContent = new Date(line.at * 1000).toLocaleString();
    const level = document.createElement("b");
    level.textContent = line.level;
    const service = document.createElement("i");
    service.textContent = line.service;
    item.append(time, " ", level, " ", service, " " + line.message);
    log.append(item);
    while (log.children.length > 1000) log.firstElementChild.remove();
    log.scrollTop = log.scrollHeight;
  };
})();
