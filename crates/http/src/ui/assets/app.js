// chartyard web UI: optional enhancements. Every page works without this script.
"use strict";

// Copy buttons: each copies the text of the element its data-copy names.
for (const button of document.querySelectorAll("button.copy")) {
  button.hidden = false;
  button.addEventListener("click", async () => {
    const source = document.getElementById(button.dataset.copy);
    if (!source) return;
    try {
      await navigator.clipboard.writeText(source.textContent);
      button.textContent = "Copied";
    } catch {
      const range = document.createRange();
      range.selectNodeContents(source);
      getSelection().removeAllRanges();
      getSelection().addRange(range);
      button.textContent = "Selected";
    }
    setTimeout(() => { button.textContent = "Copy"; }, 1500);
  });
}

// Live filter of a space's charts, as the server-side filter would answer.
const filter = document.querySelector("form#filter input[name=q]");
if (filter) {
  const items = [...document.querySelectorAll("#charts li[data-chart]")];
  const count = document.getElementById("shown");
  filter.addEventListener("input", () => {
    const words = filter.value.trim().toLowerCase();
    let shown = 0;
    for (const item of items) {
      const match = !words || item.textContent.toLowerCase().includes(words);
      item.hidden = !match;
      if (match) shown++;
    }
    if (count) count.textContent = String(shown);
  });
}

// Destructive forms ask first.
for (const form of document.querySelectorAll("form[data-confirm]")) {
  form.addEventListener("submit", (event) => {
    if (!confirm(form.dataset.confirm)) event.preventDefault();
  });
}

// Drag and drop onto the upload form: a .tgz goes to the chart field, a .prov to the
// provenance field.
const zone = document.getElementById("dropzone");
if (zone) {
  const form = zone.closest("form");
  const chart = form.querySelector("input[name=chart]");
  const prov = form.querySelector("input[name=prov]");
  const chosen = document.getElementById("chosen");
  const show = () => {
    const names = [...chart.files, ...prov.files].map((f) => f.name);
    if (chosen) chosen.textContent = names.length ? names.join(", ") : "";
  };
  chart.addEventListener("change", show);
  prov.addEventListener("change", show);
  zone.addEventListener("dragover", (event) => { event.preventDefault(); zone.classList.add("over"); });
  zone.addEventListener("dragleave", () => zone.classList.remove("over"));
  zone.addEventListener("drop", (event) => {
    event.preventDefault();
    zone.classList.remove("over");
    for (const file of event.dataTransfer.files) {
      const target = file.name.endsWith(".prov") ? prov : chart;
      const files = new DataTransfer();
      files.items.add(file);
      target.files = files.files;
    }
    show();
  });
}
