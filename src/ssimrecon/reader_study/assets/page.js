"use strict";
// The reading session: one trial at a time, answers kept in localStorage under the session id and
// the reader id, exported as a CSV download. The embedded data (#session-data) holds, per trial,
// an opaque id, the reference and the reconstructions in the order shown: never a method name.
(function () {
  const data = JSON.parse(document.getElementById("session-data").textContent);
  const trials = data.trials;
  const criteria = data.criteria;
  const positions = data.positions;
  const hasChoice = data.tasks.includes("choice");
  const hasLikert = data.tasks.includes("likert");
  const READER = /^[A-Za-z0-9_-]{1,40}$/;
  const PREFIX = "ssimrecon-reader-study:" + data.session + ":";
  const LAST_READER = PREFIX + "last-reader";
  const cells = hasLikert
    ? criteria.flatMap((c) => positions.map((p) => ({ criterion: c.key, position: p })))
    : [];
  const $ = (id) => document.getElementById(id);

  let reader = null;
  let state = null; // {index, answers: {trial: {choice, scores: {criterion: {position: n}}}}, seconds: {trial: s}}
  let cursor = 0;
  let shownAt = null;
  const zoom = { on: false, x: 0.5, y: 0.5 };

  function storageKey(id) {
    return PREFIX + "reader:" + id;
  }

  function load(id) {
    try {
      const stored = JSON.parse(localStorage.getItem(storageKey(id)));
      if (stored && typeof stored.answers === "object" && typeof stored.index === "number") {
        stored.seconds = stored.seconds || {};
        return stored;
      }
    } catch (error) {
      // unreadable storage: start afresh
    }
    return { index: 0, answers: {}, seconds: {} };
  }

  function save() {
    localStorage.setItem(storageKey(reader), JSON.stringify(state));
    localStorage.setItem(LAST_READER, reader);
  }

  function answer(trial) {
    if (!state.answers[trial.id]) state.answers[trial.id] = { choice: null, scores: {} };
    return state.answers[trial.id];
  }

  function score(trial, criterion, position) {
    const given = state.answers[trial.id];
    return given && given.scores[criterion] ? given.scores[criterion][position] : undefined;
  }

  function complete(trial) {
    const given = state.answers[trial.id];
    if (!given) return false;
    if (hasChoice && !given.choice) return false;
    return cells.every((cell) => score(trial, cell.criterion, cell.position) !== undefined);
  }

  function answeredCount() {
    return trials.filter(complete).length;
  }

  function firstIncomplete() {
    const index = trials.findIndex((t) => !complete(t));
    return index < 0 ? trials.length : index;
  }

  // ---- time spent: added to the trial on screen whenever it is left (or the page is hidden)
  function stopClock() {
    if (shownAt === null || state === null || state.index >= trials.length) return;
    const id = trials[state.index].id;
    state.seconds[id] = (state.seconds[id] || 0) + (performance.now() - shownAt) / 1000;
    shownAt = null;
    save();
  }

  function startClock() {
    shownAt = state.index < trials.length ? performance.now() : null;
  }

  // ---- drawing
  function progress() {
    const n = trials.length;
    const done = state ? answeredCount() : 0;
    const at = state && state.index < n ? "Trial " + (state.index + 1) + " of " + n + " · " : "";
    $("progress-text").textContent = state ? at + done + " of " + n + " answered" : "";
    $("progress-bar").value = n ? done / n : 0;
  }

  function figure(caption, alt, src, ratio) {
    const fig = document.createElement("figure");
    fig.style.maxWidth = 72 / ratio + "vh"; // the image is at most 72% of the window's height
    const label = document.createElement("figcaption");
    label.textContent = caption;
    const view = document.createElement("div");
    view.className = "viewport";
    const img = document.createElement("img");
    img.src = src;
    img.alt = alt;
    img.draggable = false;
    img.style.aspectRatio = String(1 / ratio);
    view.appendChild(img);
    view.addEventListener("click", (event) => {
      const box = view.getBoundingClientRect();
      zoom.x = Math.min(1, Math.max(0, (event.clientX - box.left) / box.width));
      zoom.y = Math.min(1, Math.max(0, (event.clientY - box.top) / box.height));
      zoom.on = true;
      applyZoom();
    });
    fig.append(label, view);
    return fig;
  }

  function applyZoom() {
    const images = $("images");
    images.classList.toggle("zoomed", zoom.on);
    for (const img of images.querySelectorAll("img")) {
      img.style.transformOrigin = zoom.x * 100 + "% " + zoom.y * 100 + "%";
      img.style.transform = zoom.on ? "scale(" + data.zoom + ")" : "none";
    }
    $("zoom").classList.toggle("selected", zoom.on);
  }

  function drawImages(trial) {
    const images = $("images");
    images.replaceChildren(figure("Reference", "Reference image", trial.reference, trial.ratio));
    trial.candidates.forEach((src, i) => {
      const p = positions[i];
      images.appendChild(figure(p, "Reconstruction " + p, src, trial.ratio));
    });
    applyZoom();
  }

  function drawChoice(trial) {
    $("choice-panel").hidden = !hasChoice;
    if (!hasChoice) return;
    const given = state.answers[trial.id];
    const buttons = positions.map((p, i) => {
      const button = document.createElement("button");
      button.type = "button";
      button.className = "choice";
      button.dataset.position = p;
      const key = positions.length === 2 ? (i === 0 ? " / ←" : " / →") : "";
      button.textContent = p + " is better (" + p + key + ")";
      const chosen = Boolean(given && given.choice === p);
      button.classList.toggle("selected", chosen);
      button.setAttribute("aria-pressed", String(chosen));
      button.addEventListener("click", () => choose(p));
      return button;
    });
    $("choice-buttons").replaceChildren(...buttons);
  }

  function drawLikert(trial) {
    const table = $("likert");
    table.hidden = !hasLikert;
    if (!hasLikert) return;
    const head = document.createElement("tr");
    head.appendChild(document.createElement("th")).textContent = "Score 1-5";
    for (const p of positions) head.appendChild(document.createElement("th")).textContent = p;
    const rows = criteria.map((criterion) => {
      const row = document.createElement("tr");
      const name = row.appendChild(document.createElement("th"));
      name.textContent = criterion.label + " ";
      const anchors = name.appendChild(document.createElement("span"));
      anchors.className = "anchors";
      anchors.textContent = "(" + criterion.low + ", " + criterion.high + ")";
      for (const p of positions) {
        const cell = row.appendChild(document.createElement("td"));
        const index = cells.findIndex((c) => c.criterion === criterion.key && c.position === p);
        cell.classList.toggle("cursor", index === cursor);
        cell.dataset.criterion = criterion.key;
        cell.dataset.position = p;
        for (let value = data.likert[0]; value <= data.likert[1]; value++) {
          const button = cell.appendChild(document.createElement("button"));
          button.type = "button";
          button.className = "score";
          button.dataset.criterion = criterion.key;
          button.dataset.position = p;
          button.dataset.value = String(value);
          button.textContent = String(value);
          const selected = score(trial, criterion.key, p) === value;
          button.classList.toggle("selected", selected);
          button.setAttribute("aria-pressed", String(selected));
          button.addEventListener("click", () => {
            cursor = index;
            rate(value);
          });
        }
      }
      return row;
    });
    table.replaceChildren(head, ...rows);
  }

  function draw() {
    progress();
    const started = state !== null;
    $("start").hidden = started;
    $("trial").hidden = !started || state.index >= trials.length;
    $("done").hidden = !started || state.index < trials.length;
    if (!started || state.index >= trials.length) return;
    const trial = trials[state.index];
    drawImages(trial);
    drawChoice(trial);
    drawLikert(trial);
    $("prev").disabled = state.index === 0;
    $("next").disabled = !complete(trial);
    $("hint").textContent = complete(trial)
      ? "Answered. Enter (or N) goes on."
      : "Answer every question to go on.";
  }

  // ---- answering
  function choose(position) {
    if (!hasChoice || state.index >= trials.length) return;
    answer(trials[state.index]).choice = position;
    save();
    draw();
  }

  function rate(value) {
    if (!hasLikert || state.index >= trials.length) return;
    const cell = cells[cursor];
    const given = answer(trials[state.index]);
    given.scores[cell.criterion] = given.scores[cell.criterion] || {};
    given.scores[cell.criterion][cell.position] = value;
    cursor = Math.min(cursor + 1, cells.length - 1);
    save();
    draw();
  }

  function go(index) {
    stopClock();
    state.index = Math.max(0, Math.min(index, trials.length));
    if (state.index === trials.length && answeredCount() < trials.length) {
      state.index = firstIncomplete();
    }
    cursor = 0;
    zoom.on = false;
    save();
    startClock();
    draw();
  }

  function next() {
    if (state.index < trials.length && complete(trials[state.index])) go(state.index + 1);
  }

  function begin(id) {
    reader = id;
    state = load(id);
    cursor = 0;
    save();
    startClock();
    draw();
  }

  // ---- export: one row per answered trial and position; no method, subject or slice
  function csvRows() {
    const header = ["session", "reader", "trial", "sequence", "position", "chosen"]
      .concat(criteria.map((c) => c.key))
      .concat(["complete", "seconds"]);
    const rows = [header.join(",")];
    trials.forEach((trial, i) => {
      const given = state.answers[trial.id];
      if (!given) return;
      const seconds = (state.seconds[trial.id] || 0).toFixed(1);
      for (const p of positions) {
        const chosen = hasChoice && given.choice ? (given.choice === p ? "1" : "0") : "";
        const scores = criteria.map((c) => {
          const value = score(trial, c.key, p);
          return value === undefined ? "" : String(value);
        });
        const row = [data.session, reader, trial.id, String(i + 1), p, chosen];
        rows.push(row.concat(scores, [complete(trial) ? "1" : "0", seconds]).join(","));
      }
    });
    return rows.join("\n") + "\n";
  }

  function exportCsv() {
    stopClock();
    startClock();
    const name = "reader-study-" + data.session + "-" + reader + ".csv";
    const link = document.createElement("a");
    link.href = URL.createObjectURL(new Blob([csvRows()], { type: "text/csv" }));
    link.download = name;
    document.body.appendChild(link);
    link.click();
    link.remove();
    setTimeout(() => URL.revokeObjectURL(link.href), 60000);
    const done = answeredCount();
    $("export-status").textContent =
      "Exported " + name + ": " + done + " of " + trials.length + " trials answered.";
  }

  // ---- instructions and controls
  function instructions() {
    const parts = [];
    if (hasChoice) {
      const arrows = positions.length === 2 ? " (or <kbd>←</kbd> / <kbd>→</kbd>)" : "";
      parts.push(
        "<li>Choose the better reconstruction: click it or press its letter" + arrows + ".</li>",
      );
    }
    if (hasLikert) {
      parts.push(
        "<li>Score every reconstruction 1-5 on " +
          criteria.map((c) => c.label.toLowerCase()).join(", ") +
          " (5 is best on each): click, or press <kbd>1</kbd>-<kbd>5</kbd> for the outlined " +
          "cell (it then moves on; <kbd>↑</kbd> / <kbd>↓</kbd> move it).</li>",
      );
    }
    parts.push(
      "<li><kbd>Enter</kbd> or <kbd>N</kbd>: next trial, <kbd>P</kbd>: previous. " +
        "<kbd>Z</kbd> or a click on an image: zoom x" + data.zoom +
        " (all images at the same place), <kbd>Esc</kbd>: zoom off.</li>",
    );
    $("instructions").innerHTML = "<ul>" + parts.join("") + "</ul>";
    $("n-candidates").textContent = String(positions.length);
  }

  function onKey(event) {
    if (event.target instanceof HTMLInputElement) {
      if (event.key === "Enter") $("start-button").click();
      return;
    }
    if (state === null || event.ctrlKey || event.metaKey || event.altKey) return;
    if (state.index >= trials.length) return;
    const key = event.key;
    const letter = key.length === 1 ? key.toUpperCase() : "";
    let handled = true;
    if (hasChoice && positions.includes(letter)) choose(letter);
    else if (hasChoice && positions.length === 2 && key === "ArrowLeft") choose(positions[0]);
    else if (hasChoice && positions.length === 2 && key === "ArrowRight") choose(positions[1]);
    else if (hasLikert && /^[1-9]$/.test(key)) {
      const value = Number(key);
      if (value >= data.likert[0] && value <= data.likert[1]) rate(value);
    } else if (hasLikert && key === "ArrowDown") {
      cursor = Math.min(cursor + 1, cells.length - 1);
      draw();
    } else if (hasLikert && key === "ArrowUp") {
      cursor = Math.max(cursor - 1, 0);
      draw();
    } else if (key === "Enter" || letter === "N") next();
    else if (letter === "P") go(state.index - 1);
    else if (letter === "Z") {
      zoom.on = !zoom.on;
      applyZoom();
    } else if (key === "Escape") {
      zoom.on = false;
      applyZoom();
    } else handled = false;
    if (handled) event.preventDefault();
  }

  $("start-button").addEventListener("click", () => {
    const id = $("reader-id").value.trim();
    if (!READER.test(id)) {
      $("start-error").textContent =
        "A reader id is 1-40 letters, digits, '-' or '_' (no names: use the id you were given).";
      return;
    }
    $("start-error").textContent = "";
    begin(id);
  });
  $("prev").addEventListener("click", () => go(state.index - 1));
  $("next").addEventListener("click", next);
  $("zoom").addEventListener("click", () => {
    zoom.on = !zoom.on;
    applyZoom();
  });
  $("export").addEventListener("click", exportCsv);
  $("export-done").addEventListener("click", exportCsv);
  $("review").addEventListener("click", () => go(0));
  $("switch-reader").addEventListener("click", () => {
    stopClock();
    localStorage.removeItem(LAST_READER);
    reader = null;
    state = null;
    $("reader-id").value = "";
    draw();
  });
  document.addEventListener("keydown", onKey);
  document.addEventListener("visibilitychange", () => {
    if (state === null) return;
    if (document.hidden) stopClock();
    else startClock();
  });
  window.addEventListener("pagehide", stopClock);

  instructions();
  const last = localStorage.getItem(LAST_READER);
  if (last && READER.test(last)) begin(last);
  else draw();
})();
