// The chat page: talks to /api/v1, streams replies over server-sent events read with fetch
// (so embedded pages can send their bearer token), resumes with Last-Event-ID.
(function () {
  "use strict";
  const root = document.getElementById("chat");
  if (!root) return;
  const $ = (id) => document.getElementById(id);
  const state = { sessionId: root.dataset.sessionId, subject: root.dataset.subject, status: "active" };
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
    } catch (e) { /* keep the streamed text */ }
    div.dataset.status = "done";
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

  async function streamReply(div, replyId, url) {
    const body = div.querySelector(".body");
    setTyping(div, true);
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
    if (!active) $("rating").hidden = false;
  }

  async function startSession(subject) {
    try {
      const s = await api("POST", "/sessions", { subject });
      state.sessionId = s.id;
      state.status = "active";
      if (!token) history.replaceState(null, "", "/sessions/" + s.id);
      showComposer();
      $("message").focus();
    } catch (e) { showError(e.message); }
  }

  async function loadSession() {
    const s = await api("GET", "/sessions/" + state.sessionId);
    state.status = s.status;
    for (const m of s.messages) {
      const div = bubble(m.role, m.role === "tutor" ? "" : m.content);
      if (m.role !== "tutor") continue;
      div.dataset.replyId = m.id;
      if (m.status === "done") {
        div.querySelector(".body").innerHTML = m.content_html;
        typeset(div.querySelector(".body"));
        div.dataset.status = "done";
      }
      else if (m.status === "failed") failed(div, m.id, m.error);
      else streamReply(div, m.id, "/api/v1/messages/" + m.id + "/stream");
    }
    showComposer();
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
      try {
        await api("POST", "/sessions/" + state.sessionId + "/rating", { rating });
        document.querySelectorAll(".star").forEach((s) => s.classList.toggle("on", Number(s.dataset.rating) <= rating));
        $("rating-thanks").hidden = false;
      } catch (e) { showError(e.message); }
    });
  }

  if (state.sessionId) loadSession().catch((e) => showError(e.message));
  else if (state.subject) startSession(state.subject);
  else showPicker().catch((e) => showError(e.message));
})();
