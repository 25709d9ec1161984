// Small enhancements for the chat page; every form also works without this script.
"use strict";

document.addEventListener("DOMContentLoaded", () => {
  const latest = document.getElementById("latest");
  if (latest) {
    latest.scrollIntoView({ block: "end" });
  }

  for (const form of document.querySelectorAll("form[data-composer]")) {
    const textarea = form.querySelector("textarea");
    const send = form.querySelector("[data-send]");
    const thinking = form.querySelector("[data-thinking]");

    form.addEventListener("submit", (event) => {
      if (form.dataset.submitting === "true") {
        event.preventDefault();
        return;
      }
      form.dataset.submitting = "true";
      // readOnly, not disabled: a disabled textarea would not be submitted.
      if (textarea) textarea.readOnly = true;
      if (send) send.disabled = true;
      if (thinking) thinking.hidden = false;
    });

    if (textarea) {
      textarea.addEventListener("keydown", (event) => {
        if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
          event.preventDefault();
          if (textarea.value.trim() !== "") form.requestSubmit();
        }
      });
    }
  }
});
