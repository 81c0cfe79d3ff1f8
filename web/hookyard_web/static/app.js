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
  // Copy buttons (the one-time API token).
  document.querySelectorAll("[data-copy]").forEach((button) => {
    button.addEventListener("click", async () => {
      const input = document.querySelector(button.dataset.copy);
      input.select();
      try {
        await navigator.clipboard.writeText(input.value);
        button.textContent = "Copied";
      } catch (e) {
        button.textContent = "Press Ctrl+C";
      }
    });
  });
});
