// Operator review page: heatmap toggles and keyboard shortcuts. No framework, no build step;
// the page works without this file (forms and links), it only makes the work faster.
"use strict";

function typingInField(event) {
  const target = event.target;
  const tag = target && target.tagName;
  return tag === "INPUT" || tag === "TEXTAREA" || tag === "SELECT" || (target && target.isContentEditable);
}

// One overlay label at a time: pressing a label shows its heatmap on every photo that has one;
// pressing it again shows the plain photos.
function showOverlay(label) {
  document.querySelectorAll("button[data-overlay]").forEach((button) => {
    button.setAttribute("aria-pressed", String(button.dataset.overlay === label));
  });
  document.querySelectorAll("img.overlay").forEach((image) => {
    image.hidden = image.dataset.label !== label;
  });
}

function setupOverlays() {
  document.querySelectorAll("button[data-overlay]").forEach((button) => {
    button.addEventListener("click", () => {
      const pressed = button.getAttribute("aria-pressed") === "true";
      showOverlay(pressed ? "" : button.dataset.overlay);
    });
  });
  const opacity = document.getElementById("overlay-opacity");
  if (opacity) {
    const apply = () => document.querySelectorAll("img.overlay").forEach((image) => {
      image.style.opacity = String(opacity.value / 100);
    });
    opacity.addEventListener("input", apply);
    apply();
  }
}

function clickIfPresent(selector) {
  const element = document.querySelector(selector);
  if (!element) return false;
  element.click();
  return true;
}

function cycleOverlay() {
  const buttons = Array.from(document.querySelectorAll("button[data-overlay]"));
  if (!buttons.length) return;
  const current = buttons.findIndex((b) => b.getAttribute("aria-pressed") === "true");
  const next = current + 1 < buttons.length ? buttons[current + 1].dataset.overlay : "";
  showOverlay(next);
}

const SHORTCUTS = {
  c: () => clickIfPresent("#confirm"),                      // confirm the model's answer
  e: () => { const first = document.querySelector("#correction input, #correction select");
             if (first) first.focus(); return Boolean(first); }, // edit: jump to the correction form
  n: () => clickIfPresent("a[data-shortcut='next']"),        // next item without reviewing
  q: () => clickIfPresent("a[data-shortcut='queue']"),       // back to the queue
  h: () => { cycleOverlay(); return true; },                 // cycle heatmap overlays
};

function setupShortcuts() {
  document.addEventListener("keydown", (event) => {
    if (event.ctrlKey || event.metaKey || event.altKey || typingInField(event)) return;
    const action = SHORTCUTS[event.key];
    if (action && action()) event.preventDefault();
  });
}

document.addEventListener("DOMContentLoaded", () => {
  setupOverlays();
  setupShortcuts();
  // The script is deferred: a key pressed before this line is lost. Saying when the keys are
  // live lets a browser test (and a curious operator's devtools) wait for it.
  document.documentElement.dataset.shortcuts = "on";
});
