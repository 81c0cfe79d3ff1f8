// Progressive enhancement only: every page works without this file.
document.addEventListener("DOMContentLoaded", () => {
  // Trigger category: show only the chosen category's triggers.
  document.querySelectorAll("[data-category-filter]").forEach((filter) => {
    const form = filter.closest("form");
    const groups = form.querySelectorAll("[data-category]");
    const apply = () => {
      const chosen = filter.querySelector("input:checked");
      if (!chosen) return;
      groups.forEach((group) => { group.hidden = group.dataset.category !== chosen.value; });
    };
    filter.addEventListener("change", apply);
    apply();
  });
  // The log's filters: closed on a phone unless one is set (the server decides that), open where there is room.
  if (window.matchMedia("(min-width: 721px)").matches) {
    document.querySelectorAll("details[data-open-wide]").forEach((details) => { details.open = true; });
  }
  // A page sent in the answer to a form's POST because it shows a secret once names its own address: the history
  // entry is pointed there, so Reload asks for that page (which has no secret) instead of sending the form again.
  const ownPage = document.querySelector("[data-page-url]");
  if (ownPage) history.replaceState(null, "", ownPage.dataset.pageUrl);
  // Copy buttons (the one-time API token, an inbound URL). The clipboard API exists only in a secure context
  // (HTTPS, or localhost) and may be refused; then the older execCommand copy is tried, and failing that the
  // text is left selected for Ctrl+C. A [data-copy-status] element for the same input says what happened (it is
  // a live region); without one the button says it.
  document.querySelectorAll("[data-copy]").forEach((button) => {
    const input = document.querySelector(button.dataset.copy);
    const status = document.querySelector(`[data-copy-status="${button.dataset.copy}"]`);
    const say = (long, short) => {
      if (status) status.textContent = long;
      else button.textContent = short;
    };
    button.addEventListener("click", async () => {
      input.select();
      try {
        if (!navigator.clipboard) throw new Error("no clipboard API here");
        await navigator.clipboard.writeText(input.value);
        say("Copied to the clipboard.", "Copied");
      } catch (e) {
        input.focus();
        input.select();
        let copied = false;
        try {
          copied = document.execCommand("copy");
        } catch (ignored) {
          copied = false;
        }
        if (copied) say("Copied to the clipboard.", "Copied");
        else say("Selected: press Ctrl+C (⌘C on a Mac) to copy it.", "Press Ctrl+C");
      }
    });
  });
});
