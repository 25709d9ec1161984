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
  setUpDrawer();
  setUpMenus();
  setUpSidebarSearch();
  setUpEditBoxes(document);
  const form = document.querySelector("form[data-composer]");
  // A search result's #message-N (marked by style.css), else the latest message.
  const target = window.location.hash.startsWith("#message-")
    ? document.getElementById(window.location.hash.slice(1))
    : null;
  const latest = document.getElementById("latest");
  if (target) target.scrollIntoView({ block: "center" });
  else if (latest) latest.scrollIntoView({ block: "end" });
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

// Phones: the chat list is a drawer. Open, it is modal: focus stays inside, Esc and a
// click outside close it, and focus goes back to the button that opened it.
const PHONE = window.matchMedia("(max-width: 720px)");
const FOCUSABLE =
  "a[href], button:not([disabled]), input:not([type=hidden]), textarea, select, summary";

// What Tab can reach inside `root` now: shown and enabled; of a closed menu (a
// <details>), only its summary.
function tabbable(root) {
  const inClosedMenu = (element) => {
    const closed = element.closest("details:not([open])");
    return closed !== null && !closed.querySelector(":scope > summary").contains(element);
  };
  return Array.from(root.querySelectorAll(FOCUSABLE)).filter(
    (element) =>
      element.getClientRects().length > 0 && element.tabIndex >= 0 && !inClosedMenu(element),
  );
}

function setUpDrawer() {
  const drawer = document.querySelector("[data-drawer]");
  const toggle = document.querySelector("[data-drawer-toggle]");
  if (!drawer || !toggle) return;
  const isOpen = () => drawer.dataset.open === "true";
  const open = () => {
    drawer.dataset.open = "true";
    toggle.setAttribute("aria-expanded", "true");
    const [first] = tabbable(drawer);
    if (first) first.focus();
  };
  const close = (returnFocus) => {
    delete drawer.dataset.open;
    toggle.setAttribute("aria-expanded", "false");
    if (window.location.hash === "#chats-drawer") {
      history.replaceState(null, "", window.location.pathname + window.location.search);
    }
    if (returnFocus) toggle.focus();
  };
  // Opened without script (the link's #chats-drawer), then the script took over.
  if (window.location.hash === "#chats-drawer" && PHONE.matches) open();
  toggle.addEventListener("click", (event) => {
    event.preventDefault();
    if (isOpen()) close(true);
    else open();
  });
  for (const closer of document.querySelectorAll("[data-drawer-close]")) {
    closer.addEventListener("click", (event) => {
      event.preventDefault();
      close(true);
    });
  }
  drawer.addEventListener("keydown", (event) => {
    if (!isOpen()) return;
    if (event.key === "Escape") {
      event.stopPropagation(); // not a Stop of the reply being written
      close(true);
    } else if (event.key === "Tab") {
      const inside = tabbable(drawer);
      const first = inside[0];
      const last = inside[inside.length - 1];
      if (event.shiftKey && document.activeElement === first) {
        event.preventDefault();
        last.focus();
      } else if (!event.shiftKey && document.activeElement === last) {
        event.preventDefault();
        first.focus();
      }
    }
  });
  document.addEventListener("click", (event) => {
    if (isOpen() && !drawer.contains(event.target) && !toggle.contains(event.target)) close(false);
  });
  PHONE.addEventListener("change", () => {
    if (!PHONE.matches && isOpen()) close(false);
  });
}

// A chat's "…" menu (a <details>): one open at a time; it closes on Esc (focus back on
// its button), on a click outside and after an export; opening it puts the cursor in
// the title field. Delete asks in a dialog instead of the confirmation page.
function setUpMenus() {
  const menus = Array.from(document.querySelectorAll("details[data-menu]"));
  const closeMenu = (menu, returnFocus) => {
    menu.open = false;
    if (returnFocus) menu.querySelector("summary").focus();
  };
  for (const menu of menus) {
    menu.addEventListener("toggle", () => {
      if (!menu.open) return;
      for (const other of menus) if (other !== menu) other.open = false;
      const field = menu.querySelector("[data-menu-focus]");
      if (field) {
        field.focus();
        field.select();
      }
    });
    menu.addEventListener("keydown", (event) => {
      if (event.key !== "Escape" || !menu.open) return;
      event.preventDefault();
      event.stopPropagation(); // neither a Stop of the reply nor closing the drawer
      closeMenu(menu, true);
    });
    for (const done of menu.querySelectorAll("[data-menu-done]")) {
      // After the download has started.
      done.addEventListener("click", () => setTimeout(() => closeMenu(menu, true), 0));
    }
  }
  document.addEventListener("click", (event) => {
    for (const menu of menus) if (menu.open && !menu.contains(event.target)) closeMenu(menu, false);
  });

  const dialog = document.querySelector("dialog[data-delete-dialog]");
  if (!dialog) return;
  const form = dialog.querySelector("form[data-delete-form]");
  const title = dialog.querySelector("[data-delete-title]");
  let opener = null;
  for (const link of document.querySelectorAll("a[data-delete-chat]")) {
    link.addEventListener("click", (event) => {
      event.preventDefault();
      const menu = link.closest("details[data-menu]");
      opener = menu ? menu.querySelector("summary") : link;
      if (menu) menu.open = false;
      form.action = link.getAttribute("href");
      title.textContent = link.dataset.chatTitle || "";
      dialog.showModal();
    });
  }
  dialog.querySelector("[data-dialog-cancel]").addEventListener("click", () => dialog.close());
  dialog.addEventListener("close", () => {
    if (opener) opener.focus();
  });
}

// The sidebar's search answers as you type (the search page stays for Enter, and for
// browsers without this script); a later query's answer always wins.
const SEARCH_DELAY_MS = 250;

function setUpSidebarSearch() {
  const input = document.getElementById("sidebar-search");
  const results = document.querySelector("[data-search-results]");
  const chats = document.querySelector("[data-chat-list]");
  if (!input || !results || !chats) return;
  let timer = null;
  let asked = 0;
  const show = (searching) => {
    results.hidden = !searching;
    chats.hidden = searching;
  };
  const render = (answer) => {
    const summary = document.createElement("p");
    summary.className = "sidebar-results__summary";
    summary.setAttribute("role", "status");
    summary.textContent = answer.summary;
    const list = document.createElement("ol");
    for (const result of answer.results) {
      const item = document.createElement("li");
      const link = document.createElement("a");
      link.href = result.url;
      const title = document.createElement("span");
      title.className = "sidebar-results__title";
      title.textContent = result.title;
      const snippet = document.createElement("span");
      snippet.className = "sidebar-results__snippet";
      // The server's escaped text, with only its own <mark> tags.
      snippet.innerHTML = result.snippet_html;
      link.append(title, snippet);
      item.append(link);
      list.append(item);
    }
    results.replaceChildren(summary, list);
    show(true);
  };
  input.addEventListener("input", () => {
    clearTimeout(timer);
    const query = input.value.trim();
    if (query === "") {
      asked += 1;
      results.replaceChildren();
      show(false);
      return;
    }
    timer = setTimeout(async () => {
      const mine = ++asked;
      let answer;
      try {
        const response = await fetch(`/search?q=${encodeURIComponent(query)}`, {
          headers: JSON_HEADERS,
        });
        answer = await response.json();
        if (!response.ok) answer = { summary: answer.error || SESSION_PROBLEM, results: [] };
      } catch {
        answer = { summary: NETWORK_PROBLEM, results: [] };
      }
      if (mine === asked) render(answer);
    }, SEARCH_DELAY_MS);
  });
}

// The message box grows with its text (up to the CSS max-height); CSS does it where
// the browser knows `field-sizing`.
function growWithText(box) {
  if (CSS.supports("field-sizing", "content")) return;
  const fit = () => {
    box.style.height = "auto";
    box.style.height = `${box.scrollHeight + 2}px`;
  };
  box.addEventListener("input", fit);
  fit();
}

// The message box and the edit boxes grow with their text; an edit box has the
// message box's keys. Run again on the messages a finished reply brings.
function setUpEditBoxes(root) {
  for (const box of root.querySelectorAll("textarea[data-grows]")) growWithText(box);
  for (const box of root.querySelectorAll("textarea[data-edit]")) editInPlace(box);
}

// Editing a message happens in its place (style.css hides the old text) with the main
// box's keys: Enter saves, Shift+Enter adds a line, Esc cancels.
function editInPlace(box) {
  const details = box.closest("details");
  const form = box.form;
  if (!details || !form) return;
  details.addEventListener("toggle", () => {
    if (!details.open) return;
    box.focus();
    box.setSelectionRange(box.value.length, box.value.length);
  });
  box.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      if (box.value.trim() !== "") form.requestSubmit();
    } else if (event.key === "Escape") {
      event.preventDefault();
      event.stopPropagation();
      box.value = box.defaultValue;
      details.open = false;
      details.querySelector("summary").focus();
    }
  });
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
    // Enter sends only with this script; the keys are said where there is room for them.
    if (this.textarea && !PHONE.matches && this.textarea.dataset.keysPlaceholder) {
      this.textarea.placeholder = this.textarea.dataset.keysPlaceholder;
    }
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
      // Esc in a dialog or a menu is theirs (they stop it from reaching here, or are modal).
      if (event.key === "Escape" && this.source && !document.querySelector("dialog[open]")) {
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
      this.textarea.dispatchEvent(new Event("input"));
      // Clicking Send moved the focus to the button: the next message goes in the box.
      this.textarea.focus();
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
      this.announce(state.status, content.textContent);
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
      setUpEditBoxes(fresh);
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
    const article = document.createElement("article");
    article.className = "message__article";
    const author = document.createElement("h2");
    author.className = "message__author";
    author.id = `author-new-${this.list.children.length}`;
    author.textContent = role === "user" ? "You" : "Assistant";
    article.setAttribute("aria-labelledby", author.id);
    const content = document.createElement("div");
    content.className = "message__content";
    article.append(author, content);
    item.append(article);
    if (role === "user") {
      const paragraph = document.createElement("p");
      paragraph.textContent = text;
      content.append(paragraph);
    } else {
      item.classList.add("message--generating");
      item.dataset.status = "generating";
      item.setAttribute("aria-busy", "true");
      const thinking = document.createElement("p");
      thinking.className = "message__thinking";
      thinking.dataset.thinking = "";
      thinking.textContent = "Thinking…";
      article.append(thinking);
    }
    this.list.append(item);
    item.scrollIntoView({ block: "end" });
    return item;
  }

  // Once per reply, when it is over: the words of the status, then the reply itself.
  announce(status, text) {
    const announcer = document.querySelector("[data-announcer]");
    if (!announcer) return;
    const words = { complete: "Reply finished.", stopped: "Reply stopped.", error: "Reply failed." };
    announcer.textContent = `${words[status] || ""} ${text}`.trim();
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
