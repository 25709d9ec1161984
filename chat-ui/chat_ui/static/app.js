// The chat page's enhancements: send without reloading, stream the reply as it is
// written, stop it, resume it after a reload. Every form also works without this
// script (the server then waits for the reply and the page refreshes itself).
"use strict";

const JSON_HEADERS = { Accept: "application/json" };
const SESSION_PROBLEM = "Your session expired or the page is stale. Reload the page and try again.";
const NETWORK_PROBLEM = "The server could not be reached. Check your connection and try again.";
const SLOW_DOWN =
  "Too many requests came from your network just now. Wait a minute, then send again.";
// How close to the bottom (in pixels) still counts as "at the bottom" for auto-scroll.
const BOTTOM_SLACK = 80;
// With every model slot busy, llama.cpp queues a request; after this long without a
// first token, say so instead of leaving "Thinking…" unexplained.
const THINKING = "Thinking…";
// The server's fair queue: every slot of the model is writing someone's reply.
const queuedText = (position) =>
  `Queued, position ${position}: the model is writing other replies first…`;

document.addEventListener("DOMContentLoaded", () => {
  showFullLinks();
  const form = document.querySelector("form[data-composer]");
  const latest = document.getElementById("latest");
  if (latest) latest.scrollIntoView({ block: "end" });
  if (!form) return;
  const chat = new ChatPage(form);
  chat.resumeLiveReply();
});

// A one-time link is rendered as a path (the server trusts no Host header); the
// browser knows the address it reached the server by, so it shows the whole link.
function showFullLinks() {
  for (const field of document.querySelectorAll("input[data-absolute-link]")) {
    field.value = new URL(field.value, window.location.href).href;
    field.addEventListener("focus", () => field.select());
  }
}

// A version 4 UUID; crypto.randomUUID exists only on HTTPS pages, getRandomValues everywhere.
function randomUuid() {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  bytes[6] = (bytes[6] & 0x0f) | 0x40;
  bytes[8] = (bytes[8] & 0x3f) | 0x80;
  const hex = Array.from(bytes, (byte) => byte.toString(16).padStart(2, "0")).join("");
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

class ChatPage {
  constructor(form) {
    this.form = form;
    this.textarea = form.querySelector("textarea[name=content]");
    this.send = form.querySelector("[data-send]");
    this.stopButton = form.querySelector("[data-stop]");
    this.alerts = document.querySelector("[data-alerts]");
    this.list = document.querySelector("[data-messages]");
    this.source = null;
    this.bubble = null;
    this.followBottom = true;

    form.addEventListener("submit", (event) => this.onSubmit(event));
    if (this.textarea) {
      this.textarea.addEventListener("keydown", (event) => this.onKey(event));
    }
    document.addEventListener("keydown", (event) => {
      if (event.key === "Escape" && this.source) {
        event.preventDefault();
        this.stop();
      }
    });
    // Scrolling up pauses auto-scroll; coming back to the bottom resumes it.
    document.addEventListener("scroll", () => this.onScroll(), { capture: true, passive: true });
    for (const action of document.querySelectorAll("form[data-reply-action]")) {
      action.addEventListener("submit", (event) => this.onReplyAction(event, action));
    }
  }

  onKey(event) {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      if (!this.source && this.textarea.value.trim() !== "") this.form.requestSubmit(this.send);
    }
  }

  async onSubmit(event) {
    event.preventDefault();
    if (event.submitter && event.submitter.hasAttribute("data-stop")) {
      this.stop();
      return;
    }
    if (this.source || this.form.dataset.submitting === "true") return;
    const text = this.textarea ? this.textarea.value : "";
    if (text.trim() === "") return;
    this.clearAlert();
    this.setBusy(true);
    this.form.dataset.submitting = "true";
    try {
      const answer = await this.post(this.form.action, new FormData(this.form));
      if (!answer) return;
      if (answer.chat_url) {
        // A new chat: its page lists it in the sidebar and resumes the stream.
        window.location.assign(answer.chat_url);
        return;
      }
      this.textarea.value = "";
      this.renewRequestId();
      this.appendMessage("user", text);
      const bubble = this.appendMessage("assistant", "");
      this.follow(answer.stream_url, bubble);
    } finally {
      delete this.form.dataset.submitting;
    }
  }

  async onReplyAction(event, action) {
    // Retry, regenerate and edit start a reply; the page, reloaded, follows it.
    event.preventDefault();
    if (this.source) return;
    this.clearAlert();
    const answer = await this.post(action.action, new FormData(action));
    if (answer) window.location.reload();
  }

  // POST a form for JSON; shows the error and answers null when it did not work.
  async post(url, body) {
    let response;
    try {
      response = await fetch(url, { method: "POST", body, headers: JSON_HEADERS });
    } catch {
      this.showAlert(NETWORK_PROBLEM);
      this.setBusy(false);
      return null;
    }
    const type = response.headers.get("content-type") || "";
    if (response.status === 429 && !type.includes("application/json")) {
      // nginx's per-address limit: nothing reached the app; the text stays in the box.
      this.showAlert(SLOW_DOWN);
      this.setBusy(false);
      return null;
    }
    if (!type.includes("application/json")) {
      // E.g. redirected to the sign-in page.
      this.showAlert(SESSION_PROBLEM);
      this.setBusy(false);
      return null;
    }
    const answer = await response.json();
    if (!response.ok) {
      this.showAlert(answer.error || SESSION_PROBLEM);
      this.setBusy(false);
      if (this.textarea) this.textarea.focus();
      return null;
    }
    return answer;
  }

  // The page stays, so the next message needs its own id (the server deduplicates by it).
  // A failed send keeps the id: if it was stored after all, sending again finds it.
  renewRequestId() {
    const field = this.form.querySelector("input[data-request-id]");
    if (field) field.value = randomUuid();
  }

  resumeLiveReply() {
    const live = this.list && this.list.querySelector("[data-stream-url]");
    if (live) this.follow(live.dataset.streamUrl, live);
  }

  follow(url, bubble) {
    this.bubble = bubble;
    this.followBottom = true;
    const source = new EventSource(url);
    this.source = source;
    this.setBusy(true);
    source.addEventListener("update", (event) => this.render(bubble, JSON.parse(event.data)));
    source.addEventListener("done", (event) => {
      this.render(bubble, JSON.parse(event.data));
      this.finish();
    });
    source.addEventListener("error", () => {
      // EventSource reconnects by itself (and gets the state so far first); only a
      // refused connection ends it.
      if (source.readyState === EventSource.CLOSED) {
        this.showAlert("The reply's live view was lost. Reload the page to see it.");
        this.finish();
      }
    });
  }

  finish() {
    if (this.source) this.source.close();
    this.source = null;
    this.bubble = null;
    this.setBusy(false);
    if (this.textarea) this.textarea.focus();
    this.refreshMessages();
  }

  render(bubble, state) {
    const content = bubble.querySelector(".message__content");
    // The HTML is the server's sanitized markdown rendering.
    content.innerHTML = state.html;
    const thinking = bubble.querySelector("[data-thinking]");
    if (thinking) {
      thinking.hidden = state.html !== "";
      thinking.textContent = state.position ? queuedText(state.position) : THINKING;
    }
    bubble.dataset.status = state.status;
    if (state.status !== "generating") {
      bubble.removeAttribute("aria-busy");
      content.removeAttribute("aria-live");
      if (thinking) thinking.remove();
      bubble.classList.remove("message--generating");
      bubble.classList.add(`message--${state.status}`);
      if (state.status === "stopped") this.addStatus(bubble, "Stopped", "stopped");
      if (state.status === "error") {
        bubble.classList.add("message--failed");
        this.addStatus(bubble, state.error || "No reply: generating it failed.", "error");
      }
    }
    if (this.followBottom) bubble.scrollIntoView({ block: "end" });
  }

  addStatus(bubble, text, kind) {
    if (bubble.querySelector(".message__status")) return;
    const status = document.createElement("p");
    status.className = `message__status message__status--${kind}`;
    status.textContent = text;
    bubble.append(status);
  }

  // After a reply, the server's rendering brings the right actions (retry, regenerate, edit).
  async refreshMessages() {
    try {
      const response = await fetch(window.location.pathname, { headers: { Accept: "text/html" } });
      if (!response.ok) return;
      const page = new DOMParser().parseFromString(await response.text(), "text/html");
      const fresh = page.querySelector("[data-messages]");
      // A reply started meanwhile owns the list now; its own end refreshes it.
      if (!fresh || !this.list || this.source || this.form.dataset.submitting === "true") return;
      this.list.replaceWith(fresh);
      this.list = fresh;
      // The first message names the chat; show the new title without a reload.
      for (const selector of [".conversation__title", "a[aria-current=page] .chat-list__title"]) {
        const now = document.querySelector(selector);
        const then = page.querySelector(selector);
        if (now && then) now.textContent = then.textContent;
      }
      for (const action of fresh.querySelectorAll("form[data-reply-action]")) {
        action.addEventListener("submit", (event) => this.onReplyAction(event, action));
      }
    } catch {
      // The streamed rendering stays; a reload shows the actions.
    }
  }

  async stop() {
    const url = this.form.dataset.stopUrl;
    if (!url) return;
    const body = new FormData();
    body.append("csrf_token", this.form.querySelector("input[name=csrf_token]").value);
    try {
      const response = await fetch(url, { method: "POST", body, headers: JSON_HEADERS });
      if (!response.ok) this.showAlert("The reply could not be stopped. Try again.");
    } catch {
      this.showAlert(NETWORK_PROBLEM);
    }
    // The stream's "done" event shows the stopped reply.
  }

  appendMessage(role, text) {
    if (!this.list) {
      this.list = document.createElement("ol");
      this.list.className = "messages";
      this.list.setAttribute("aria-label", "Messages");
      this.list.dataset.messages = "";
      this.form.before(this.list);
    }
    const previous = this.list.querySelector("#latest");
    if (previous) previous.removeAttribute("id");
    const item = document.createElement("li");
    item.className = `message message--${role}`;
    item.id = "latest";
    const author = document.createElement("p");
    author.className = "message__author";
    author.textContent = role === "user" ? "You" : "Assistant";
    const content = document.createElement("div");
    content.className = "message__content";
    item.append(author, content);
    if (role === "user") {
      const paragraph = document.createElement("p");
      paragraph.textContent = text;
      content.append(paragraph);
    } else {
      item.classList.add("message--generating");
      item.dataset.status = "generating";
      item.setAttribute("aria-busy", "true");
      content.setAttribute("aria-live", "polite");
      const thinking = document.createElement("p");
      thinking.className = "message__thinking";
      thinking.dataset.thinking = "";
      thinking.textContent = "Thinking…";
      item.append(thinking);
    }
    this.list.append(item);
    item.scrollIntoView({ block: "end" });
    return item;
  }

  setBusy(busy) {
    if (this.send) this.send.disabled = busy;
    if (this.stopButton) this.stopButton.hidden = !(busy && this.source);
    this.form.dataset.generating = busy ? "true" : "false";
  }

  onScroll() {
    if (!this.bubble) return;
    const bottom = this.bubble.getBoundingClientRect().bottom;
    const visibleBottom = this.form.getBoundingClientRect().top;
    this.followBottom = bottom <= visibleBottom + BOTTOM_SLACK;
  }

  showAlert(message) {
    if (!this.alerts) return;
    this.alerts.replaceChildren();
    const alert = document.createElement("p");
    alert.className = "alert alert--error";
    alert.setAttribute("role", "alert");
    alert.textContent = message;
    this.alerts.append(alert);
  }

  clearAlert() {
    if (this.alerts) this.alerts.replaceChildren();
  }
}
