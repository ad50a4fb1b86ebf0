// The chat page: talks to /api/v1, streams replies over server-sent events read with fetch
// (so embedded pages can send their bearer token), resumes with Last-Event-ID.
(function () {
  "use strict";
  const root = document.getElementById("chat");
  if (!root) return;
  const $ = (id) => document.getElementById(id);
  const state = {
    sessionId: root.dataset.sessionId, subject: root.dataset.subject, subjectName: root.dataset.subjectName,
    status: "active", rating: 0, streaming: null,
  };
  const token = root.dataset.token;
  const csrf = root.dataset.csrf;

  function headers(extra) {
    const h = Object.assign({ "Content-Type": "application/json" }, extra || {});
    if (token) h["Authorization"] = "Bearer " + token;
    else if (csrf) h["X-CSRF-Token"] = csrf;
    return h;
  }

  async function api(method, path, body) {
    const res = await fetch("/api/v1" + path, {
      method, headers: headers(), credentials: "same-origin",
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const data = await res.json().catch(() => ({}));
    if (!res.ok) throw new Error(data.detail || data.error || ("HTTP " + res.status));
    return data;
  }

  function showError(text) {
    const el = $("chat-error");
    el.textContent = text;
    el.hidden = !text;
  }

  function bubble(role, text) {
    const div = document.createElement("div");
    div.className = "bubble " + role;
    const body = document.createElement("div");
    body.className = "body";
    body.textContent = text || "";  // student text is always shown as text
    div.appendChild(body);
    $("conversation").appendChild(div);
    div.scrollIntoView({ block: "end" });
    return div;
  }

  function setTyping(div, on) {
    div.classList.toggle("typing", on);
  }

  function failed(div, replyId, error) {
    setTyping(div, false);
    div.classList.add("failed");
    const note = document.createElement("p");
    note.className = "error-note";
    note.textContent = error || "The tutor could not answer.";
    const retry = document.createElement("button");
    retry.type = "button";
    retry.className = "retry";
    retry.textContent = "Try again";
    retry.addEventListener("click", async () => {
      note.remove(); retry.remove(); div.classList.remove("failed");
      try {
        const r = await api("POST", "/messages/" + replyId + "/retry");
        streamReply(div, replyId, r.stream_url);
      } catch (e) { failed(div, replyId, e.message); }
    });
    div.appendChild(note);
    div.appendChild(retry);
  }

  // Maths arrives as <span class="math inline"> / <div class="math block"> holding TeX (see
  // tutor/rendering.py); KaTeX typesets it as MathML, which needs no inline styles (strict CSP).
  function typeset(el) {
    if (!window.katex) return;
    el.querySelectorAll(".math").forEach((m) => {
      try {
        window.katex.render(m.textContent, m, {
          output: "mathml", displayMode: m.classList.contains("block"), throwOnError: false,
        });
      } catch (e) { /* leave the TeX as text */ }
    });
  }

  async function finish(div, replyId) {
    setTyping(div, false);
    try {
      const r = await api("GET", "/messages/" + replyId);
      div.querySelector(".body").innerHTML = r.content_html;  // sanitized on the server
      typeset(div.querySelector(".body"));
      decorate(div, r);
    } catch (e) { /* keep the streamed text */ }
    div.dataset.status = "done";
  }

  // A finished reply: "(stopped)" if the student stopped it, and thumbs up / down.
  function decorate(div, reply) {
    if (reply.stopped && !div.querySelector(".stopped-note")) {
      const note = document.createElement("p");
      note.className = "stopped-note";
      note.textContent = "You stopped this reply.";
      div.appendChild(note);
    }
    if (div.querySelector(".feedback")) return;
    const box = document.createElement("div");
    box.className = "feedback";
    const buttons = {};
    for (const [value, label] of [["up", "Helpful"], ["down", "Not helpful"]]) {
      const b = document.createElement("button");
      b.type = "button";
      b.className = "thumb thumb-" + value;  // the icon is the stylesheet's (thumb-up.svg, thumb-down.svg)
      b.title = label;
      b.setAttribute("aria-label", label);
      b.setAttribute("aria-pressed", String(reply.feedback === value));
      b.addEventListener("click", async () => {
        const chosen = b.getAttribute("aria-pressed") === "true" ? null : value;
        try {
          const r = await api("POST", "/messages/" + reply.id + "/feedback", { feedback: chosen });
          for (const [v, other] of Object.entries(buttons)) other.setAttribute("aria-pressed", String(r.feedback === v));
        } catch (e) { showError(e.message); }
      });
      buttons[value] = b;
      box.appendChild(b);
    }
    div.appendChild(box);
  }

  // Read an SSE response body with fetch; yields {id, event, data}.
  async function* sse(response) {
    const reader = response.body.getReader();
    const decoder = new TextDecoder();
    let buffer = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      buffer += decoder.decode(value, { stream: true });
      let cut;
      while ((cut = buffer.indexOf("\n\n")) >= 0) {
        const block = buffer.slice(0, cut);
        buffer = buffer.slice(cut + 2);
        const ev = { id: null, event: "message", data: "" };
        for (const line of block.split("\n")) {
          if (line.startsWith("id:")) ev.id = line.slice(3).trim();
          else if (line.startsWith("event:")) ev.event = line.slice(6).trim();
          else if (line.startsWith("data:")) ev.data += line.slice(5).trim();
        }
        if (ev.data) yield ev;
      }
    }
  }

  function setStreaming(replyId) {
    state.streaming = replyId;
    $("stop").hidden = !replyId;
    $("stop").disabled = false;
    $("send").hidden = !!replyId;
  }

  async function streamReply(div, replyId, url) {
    const body = div.querySelector(".body");
    setTyping(div, true);
    setStreaming(replyId);
    try { await readReply(div, body, replyId, url); } finally { if (state.streaming === replyId) setStreaming(null); }
  }

  async function readReply(div, body, replyId, url) {
    let lastId = null;
    for (let attempt = 0; attempt < 20; attempt++) {
      try {
        const res = await fetch(url, { headers: headers(lastId ? { "Last-Event-ID": lastId } : {}), credentials: "same-origin" });
        if (!res.ok) throw new Error("HTTP " + res.status);
        for await (const ev of sse(res)) {
          if (ev.id) lastId = ev.id;
          const data = JSON.parse(ev.data);
          if (ev.event === "token") { body.textContent += data.text; div.scrollIntoView({ block: "end" }); }
          else if (ev.event === "reset") { body.textContent = ""; }
          else if (ev.event === "done") { await finish(div, replyId); return; }
          else if (ev.event === "error") { failed(div, replyId, data.error); return; }
        }
      } catch (e) { /* connection dropped: resume below */ }
      await new Promise((r) => setTimeout(r, Math.min(500 * (attempt + 1), 5000)));
    }
    failed(div, replyId, "Lost the connection to the tutor.");
  }

  async function send(text) {
    showError("");
    $("send").disabled = true;
    $("starters").hidden = true;
    try {
      const r = await api("POST", "/sessions/" + state.sessionId + "/messages", { content: text });
      bubble("student", text);
      const div = bubble("tutor", "");
      div.dataset.replyId = r.reply_id;
      $("message").value = "";
      await streamReply(div, r.reply_id, r.stream_url);
    } catch (e) {
      showError(e.message);
    } finally {
      $("send").disabled = false;
    }
  }

  function showComposer() {
    $("picker").hidden = true;
    const active = state.status === "active";
    $("composer").hidden = !active;
    $("session-actions").hidden = !active;
    $("rating").hidden = active;
  }

  function showTitle(name) {
    state.subjectName = name || state.subjectName;
    if (!state.subjectName) return;
    $("chat-title").textContent = state.subjectName;
    $("chat-title").hidden = false;
    document.title = state.subjectName + " · AI Tutor";
  }

  // A new session: the tutor greets the student by subject and offers three questions to start with.
  async function greet() {
    const subject = (await api("GET", "/subjects")).find((s) => s.id === state.subject);
    if (!subject) return;
    showTitle(subject.name);
    const div = bubble("tutor", "");
    div.classList.add("greeting");
    const names = subject.topics.slice(0, 3).map((t) => t.name.toLowerCase());
    div.querySelector(".body").textContent =
      "Hi! I'm your " + subject.name + " tutor. I won't just hand you answers: we'll work them out together, " +
      "one hint at a time. Ask me about " + names.join(", ") + " or anything else in " + subject.name + ".";
    const box = $("starters");
    box.textContent = "";
    const label = document.createElement("span");
    label.className = "muted";
    label.textContent = "Try:";
    box.appendChild(label);
    for (const text of subject.starters) {
      const b = document.createElement("button");
      b.type = "button";
      b.className = "starter";
      b.textContent = text;
      b.addEventListener("click", () => send(text));
      box.appendChild(b);
    }
    box.hidden = !subject.starters.length;
  }

  async function startSession(subject) {
    try {
      const s = await api("POST", "/sessions", { subject });
      state.sessionId = s.id;
      state.subject = s.subject;
      state.status = "active";
      if (!token) history.replaceState(null, "", "/sessions/" + s.id);
      showComposer();
      $("message").focus();
      await greet();
    } catch (e) { showError(e.message); }
  }

  function showRating(satisfaction, comment) {
    state.rating = satisfaction || 0;
    document.querySelectorAll(".star").forEach((s) => s.classList.toggle("on", Number(s.dataset.rating) <= state.rating));
    $("rating-thanks").hidden = !state.rating;
    $("send-comment").disabled = !state.rating;
    if (comment) $("rating-comment").value = comment;
  }

  async function loadSession() {
    const s = await api("GET", "/sessions/" + state.sessionId);
    state.status = s.status;
    state.subject = s.subject;
    for (const m of s.messages) {
      const div = bubble(m.role, m.role === "tutor" ? "" : m.content);
      if (m.role !== "tutor") continue;
      div.dataset.replyId = m.id;
      if (m.status === "done") {
        div.querySelector(".body").innerHTML = m.content_html;
        typeset(div.querySelector(".body"));
        decorate(div, m);
        div.dataset.status = "done";
      }
      else if (m.status === "failed") failed(div, m.id, m.error);
      else streamReply(div, m.id, "/api/v1/messages/" + m.id + "/stream");
    }
    showComposer();
    showRating(s.satisfaction, s.comment);
    if (!s.messages.length && s.status === "active") await greet();
    else showTitle();
  }

  async function showPicker() {
    const subjects = await api("GET", "/subjects");
    const box = $("subject-buttons");
    for (const s of subjects) {
      const b = document.createElement("button");
      b.type = "button";
      b.className = "subject";
      b.dataset.subject = s.id;
      b.textContent = s.name;
      b.addEventListener("click", () => startSession(s.id));
      box.appendChild(b);
    }
    $("picker").hidden = false;
  }

  // "Start another": a fresh session of the same subject, on the same page.
  async function startAnother() {
    $("conversation").textContent = "";
    $("rating-comment").value = "";
    $("comment-thanks").hidden = true;
    showRating(0, "");
    showError("");
    await startSession(state.subject);
  }

  $("composer").addEventListener("submit", (e) => {
    e.preventDefault();
    const text = $("message").value.trim();
    if (text) send(text);
  });
  $("message").addEventListener("keydown", (e) => {
    if (e.key === "Enter" && !e.shiftKey) { e.preventDefault(); $("composer").requestSubmit(); }
  });
  $("end-session").addEventListener("click", async () => {
    try {
      const r = await api("POST", "/sessions/" + state.sessionId + "/end");
      state.status = r.status;
      showComposer();
    } catch (e) { showError(e.message); }
  });
  for (const star of document.querySelectorAll(".star")) {
    star.addEventListener("click", async () => {
      const rating = Number(star.dataset.rating);
      const comment = $("rating-comment").value.trim();
      try {
        await api("POST", "/sessions/" + state.sessionId + "/rating", comment ? { rating, comment } : { rating });
        showRating(rating);
      } catch (e) { showError(e.message); }
    });
  }
  $("send-comment").addEventListener("click", async () => {
    try {
      await api("POST", "/sessions/" + state.sessionId + "/rating",
        { rating: state.rating, comment: $("rating-comment").value.trim() });
      $("comment-thanks").hidden = false;
    } catch (e) { showError(e.message); }
  });
  $("start-another").addEventListener("click", () => startAnother());
  $("stop").addEventListener("click", async () => {
    if (!state.streaming) return;
    $("stop").disabled = true;
    try { await api("POST", "/messages/" + state.streaming + "/stop"); }  // the stream then ends with "done"
    catch (e) { showError(e.message); $("stop").disabled = false; }
  });

  if (state.sessionId) loadSession().catch((e) => showError(e.message));
  else if (state.subject) startSession(state.subject);
  else showPicker().catch((e) => showError(e.message));
})();
