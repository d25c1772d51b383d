// Shared helpers of the labeling widgets. The Python side prepends this file to pairwise.js, ranking.js and
// demonstration.js: anywidget loads each widget as one module from a string, so relative imports cannot work.
//
// Safety rule for everything here: model text (prompts, responses, history) is untrusted. It only ever reaches the
// page through textContent or through renderMarkdown below, which builds DOM nodes from an allow-list. No
// innerHTML, no attribute other than a checked http(s) href is ever derived from model text.

/** Create an element: h("div", {class: "x", text: "plain text", title: "..."}, child, ...). */
function h(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "class") node.className = value;
    else if (key === "text") node.textContent = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value === true ? "" : String(value));
  }
  for (const child of children) if (child !== null && child !== undefined) node.append(child);
  return node;
}

/** The widget's root: JupyterLab ignores its command shortcuts for keys whose target is inside this element. */
function makeRoot(el, kind, focusTarget = null) {
  const root = h("div", {
    class: `lm-root lm-${kind}`,
    tabindex: "0",
    "data-lm-suppress-shortcuts": "true",
    "aria-label": `${kind} labeling widget`,
  });
  el.append(root);
  // The element is attached to the page only after render() returns: focus on the next frames.
  const focus = () => root.isConnected && (focusTarget ? focusTarget() : root).focus({ preventScroll: true });
  requestAnimationFrame(focus);
  setTimeout(focus, 50);
  // After a click on one of the widget's buttons, keys go to the widget again: a button that the update then
  // disables (Submit with nothing ordered) would otherwise drop focus to the page, where Lab's shortcuts live.
  root.addEventListener("click", (event) => {
    if (event.target.closest("button")) setTimeout(focus, 0);
  });
  return root;
}

/** Run `update` and, if focus was inside the root and the update removed or disabled the focused node, put it
 * back on the root (a disabled box keeps the focus for a moment, then the page would get it and Lab's keys). */
function keepingFocus(root, update) {
  const had = root.contains(document.activeElement);
  update();
  const now = document.activeElement;
  if (had && (!root.contains(now) || now.disabled)) root.focus({ preventScroll: true });
}

/** True while the person is typing (keys then belong to the text box, not to the shortcuts). */
function isTyping(event) {
  const t = event.target;
  return !!t && (t.tagName === "INPUT" || t.tagName === "TEXTAREA" || t.isContentEditable);
}

/** The widget's keyboard shortcuts, on its root. `handle(event)` returns true for a key it used: that key then goes
 * no further (not to the page, where JupyterLab's shortcuts live). Keys typed into a text box, and keys pressed
 * with Ctrl, Cmd or Alt, never reach `handle`. */
function onShortcut(root, handle) {
  root.addEventListener("keydown", (event) => {
    if (isTyping(event) || event.ctrlKey || event.metaKey || event.altKey) return;
    if (handle(event)) {
      event.preventDefault();
      event.stopPropagation();
    }
  });
}

function newEventId() {
  if (globalThis.crypto && crypto.randomUUID) return crypto.randomUUID();
  return `${Date.now().toString(36)}-${Math.random().toString(36).slice(2)}`;
}

/** Put untrusted text into `container`: plain text (default) or allow-listed markdown. */
function showText(container, text, markdown) {
  container.replaceChildren();
  if (markdown) {
    container.classList.add("lm-md");
    container.append(renderMarkdown(text));
  } else {
    container.classList.remove("lm-md");
    container.textContent = text == null ? "" : String(text);
  }
}

/** An absolute http(s) URL, or null for anything else (javascript:, data:, relative, malformed). */
function safeHref(url) {
  try {
    const parsed = new URL(String(url));
    return parsed.protocol === "http:" || parsed.protocol === "https:" ? parsed.href : null;
  } catch {
    return null;
  }
}

// ---- A small markdown renderer: paragraphs, headings (as bold lines), fenced code, inline code, emphasis,
// ---- bullet / numbered lists and http(s) links. Anything else stays literal text. Builds nodes one by one.

const LIST_ITEM = /^\s{0,3}([-*+]|\d{1,9}[.)])\s+(.*)$/;
const FENCE = /^\s{0,3}(`{3,}|~{3,})/;
const HEADING = /^\s{0,3}#{1,6}\s+(.*?)\s*#*\s*$/;

function renderMarkdown(source) {
  const frag = document.createDocumentFragment();
  const lines = String(source == null ? "" : source).replace(/\r\n?/g, "\n").split("\n");
  let i = 0;
  while (i < lines.length) {
    const line = lines[i];
    if (!line.trim()) { i++; continue; }
    const fence = line.match(FENCE);
    if (fence) {
      const body = [];
      for (i++; i < lines.length && !lines[i].trim().startsWith(fence[1]); i++) body.push(lines[i]);
      i++; // the closing fence (or the end of the text)
      frag.append(h("pre", {}, h("code", { text: body.join("\n") })));
      continue;
    }
    const heading = line.match(HEADING);
    if (heading) {
      const p = h("p", { class: "lm-md-heading" });
      appendInline(p, heading[1]);
      frag.append(p);
      i++;
      continue;
    }
    const item = line.match(LIST_ITEM);
    if (item) {
      const list = h(/\d/.test(item[1]) ? "ol" : "ul");
      let li = null;
      let parts = [];
      const flush = () => { if (li) { appendInline(li, parts.join("\n")); list.append(li); } };
      for (; i < lines.length && lines[i].trim(); i++) {
        const m = lines[i].match(LIST_ITEM);
        if (m) { flush(); li = h("li"); parts = [m[2]]; }
        else parts.push(lines[i].trim()); // a continuation line of the current item
      }
      flush();
      frag.append(list);
      continue;
    }
    const parts = [];
    for (; i < lines.length && lines[i].trim() && !FENCE.test(lines[i]) && !LIST_ITEM.test(lines[i])
      && !HEADING.test(lines[i]); i++) parts.push(lines[i]);
    const p = h("p");
    appendInline(p, parts.join("\n"));
    frag.append(p);
  }
  return frag;
}

// code span | **strong** | __strong__ | *em* | _em_ (not inside words like snake_case or __dunder) | [text](url)
const INLINE = new RegExp(
  [
    "(`+)([^`]|[^`][\\s\\S]*?[^`])\\1(?!`)",
    "\\*\\*(\\S(?:[\\s\\S]*?\\S)?)\\*\\*",
    "(?<!\\w)__(\\S(?:[\\s\\S]*?\\S)?)__(?!\\w)",
    "\\*(\\S(?:[\\s\\S]*?\\S)?)\\*",
    "(?<!\\w)_(?!_)(\\S(?:[\\s\\S]*?\\S)?)_(?!\\w)",
    "\\[([^\\[\\]]*)\\]\\(\\s*([^\\s()]*)\\s*\\)",
  ].join("|"),
  "g",
);

function appendInline(parent, text, inLink = false) {
  const re = new RegExp(INLINE.source, "g"); // own lastIndex: this function recurses
  let last = 0;
  let m;
  while ((m = re.exec(text)) !== null) {
    if (m.index > last) parent.append(document.createTextNode(text.slice(last, m.index)));
    last = re.lastIndex;
    if (m[1] !== undefined) {
      parent.append(h("code", { text: m[2] }));
    } else if (m[3] !== undefined || m[4] !== undefined) {
      const strong = h("strong");
      appendInline(strong, m[3] ?? m[4], inLink);
      parent.append(strong);
    } else if (m[5] !== undefined || m[6] !== undefined) {
      const em = h("em");
      appendInline(em, m[5] ?? m[6], inLink);
      parent.append(em);
    } else {
      const href = inLink ? null : safeHref(m[8]);
      if (href) {
        const a = h("a", { href, target: "_blank", rel: "noopener noreferrer nofollow" });
        appendInline(a, m[7], true);
        parent.append(a);
      } else {
        parent.append(document.createTextNode(m[0])); // an unsafe or nested link shows as the literal text
      }
    }
  }
  if (last < text.length) parent.append(document.createTextNode(text.slice(last)));
}

// ---- Pieces every widget shows.

/**
 * Header: title, annotator id, progress bar and counts. Decisions, skips and what is left are counted apart (a
 * skip is no label: "done" would overstate the data), and the bar shows decisions and skips as two segments.
 * Returns {node, update(progress)}.
 */
function makeHeader(title, annotator) {
  const fill = h("div", { class: "lm-progress-fill" });
  const skipFill = h("div", { class: "lm-progress-skipped" });
  const counts = h("span", { class: "lm-counts" });
  const bar = h("div", { class: "lm-progress", role: "progressbar", "aria-valuemin": "0" }, fill, skipFill);
  const node = h(
    "div",
    { class: "lm-header" },
    h("span", { class: "lm-title", text: title }),
    h("span", { class: "lm-annotator", text: `annotator: ${annotator}` }),
    bar,
    counts,
  );
  const share = (n, total) => `${total ? Math.min(100, (100 * n) / total).toFixed(1) : 0}%`;
  const update = (p) => {
    p = p || {};
    const total = p.total || 0;
    const skipped = p.skipped || 0;
    const labelled = p.labelled ?? Math.max(0, (p.done || 0) - skipped);
    const left = p.left ?? Math.max(0, total - labelled - skipped);
    fill.style.width = share(labelled, total);
    skipFill.style.width = share(skipped, total);
    bar.setAttribute("aria-valuemax", String(total));
    bar.setAttribute("aria-valuenow", String(labelled));
    let line = `${labelled} done · ${skipped} skipped · ${left} left`;
    if (p.per_minute) line += ` · ${Number(p.per_minute).toFixed(1)}/min`;
    counts.textContent = line;
    counts.title = `${total} items in all`;
  };
  return { node, update };
}

/** Status line under the widget: saving..., errors from the Python side. */
function makeStatus() {
  const node = h("div", { class: "lm-status", "aria-live": "polite" });
  const set = (text, isError = false) => {
    node.textContent = text || "";
    node.classList.toggle("lm-error", !!isError);
  };
  return { node, set };
}

/**
 * The pending-ack guard. send() refuses while an earlier message waits for the Python side's ack, so a double
 * click or key repeat can never send two judgments. The ack is the synced `ack` trait (the event id handled).
 */
function makeSender(model, onChange) {
  let pending = null;
  let since = 0;
  const api = {
    get pending() { return pending; },
    send(msg) {
      if (pending) return false;
      pending = { ...msg, event_id: newEventId() };
      since = Date.now();
      model.send(pending);
      onChange();
      return true;
    },
    /** Called on every model change: once the ack for the pending event arrived, clears the guard and returns
     * the acknowledged message (the Python side's `error` says whether it failed); otherwise null. */
    check() {
      if (pending && model.get("ack") === pending.event_id) {
        const acked = pending;
        pending = null;
        return acked;
      }
      return null;
    },
    waitedMs() { return pending ? Date.now() - since : 0; },
  };
  return api;
}

/** Short one-line preview of a text for the history list. */
function preview(text, n = 70) {
  const s = String(text == null ? "" : text).replace(/\s+/g, " ").trim();
  return s.length > n ? `${s.slice(0, n - 1)}…` : s;
}

/**
 * Recent decisions; clicking one opens it for editing. `describe(entry)` says what was decided as the person saw
 * it ("B better"); `chosenOf(entry)`, when given, is the start of the text that won, as exports name it ("chosen"),
 * so an entry can be matched with the exported rows. Returns {node, update(history)}.
 */
function makeHistory(describe, onPick, chosenOf = null) {
  const list = h("ol", { class: "lm-history-list" });
  const node = h("details", { class: "lm-history" }, h("summary", { text: "Recent decisions (click to edit)" }), list);
  const update = (history) => {
    list.replaceChildren();
    for (const entry of history || []) {
      const button = h("button", {
        class: "lm-history-entry",
        type: "button",
        onclick: () => onPick(entry),
      });
      button.append(
        h("span", { class: "lm-history-id", text: `#${entry.item_id}` }),
        h("span", { class: "lm-history-what", text: describe(entry) }),
      );
      const chosen = chosenOf ? chosenOf(entry) : null;
      if (chosen != null) {
        button.append(h("span", { class: "lm-history-chosen", title: "the chosen response", text: `“${preview(chosen, 48)}”` }));
      }
      button.append(h("span", { class: "lm-history-prompt", text: preview(entry.prompt) }));
      list.append(h("li", {}, button));
    }
    node.hidden = !(history && history.length);
  };
  return { node, update };
}

// ---- The flow every widget shares: which item is shown, sending a judgment on it, the status line, redraws.

/**
 * The item on screen: the first pending item, the next one at once while a judgment waits for its ack (`offset`),
 * or a history entry being re-decided (`editing`). `send` posts a judgment on it, as an "edit" of the stored
 * judgment when editing; `shows(item)` says whether `item` is new on screen (and restarts its timer).
 */
function makeCursor(model, sender) {
  const cursor = {
    editing: null, // a history entry being re-decided
    offset: 0, // 1 while a judgment waits for its ack: the next item shows at once
    shownKey: null,
    shownAt: performance.now(),
    current() {
      if (cursor.editing) return cursor.editing;
      const items = model.get("items") || [];
      return items[Math.min(cursor.offset, Math.max(items.length - 1, 0))] || null;
    },
    /** The acknowledged message once the Python side has handled it (see makeSender.check), else null. */
    acked() {
      const acked = sender.check();
      if (acked) cursor.offset = 0;
      return acked;
    },
    shows(item) {
      const key = item ? (cursor.editing ? `edit-${item.judgment_id}` : `item-${item.item_id}`) : null;
      if (key === cursor.shownKey) return false;
      cursor.shownKey = key;
      cursor.shownAt = performance.now();
      return true;
    },
    /** Send `fields` about `item` as a `type` message (or an edit); false when an earlier one still waits. */
    send(item, type, fields) {
      const msg = { type: cursor.editing ? "edit" : type, item_id: item.item_id, ...fields,
        seconds: (performance.now() - cursor.shownAt) / 1000 };
      if (cursor.editing) msg.judgment_id = cursor.editing.judgment_id;
      if (!sender.send(msg)) return false;
      if (!cursor.editing && (model.get("items") || []).length > 1) cursor.offset = 1;
      cursor.editing = null;
      return true;
    },
  };
  return cursor;
}

/** The pending look, the status line (an error, "Saving…", or the Python side's notice) and the history. */
function showState(root, model, sender, status, history) {
  root.classList.toggle("lm-pending", !!sender.pending);
  const error = model.get("error");
  if (error) status.set(error, true);
  else if (sender.pending && sender.waitedMs() > 1500) status.set("Saving… (waiting for the kernel)");
  else status.set(sender.pending ? "Saving…" : model.get("notice"));
  history.update(model.get("history"));
}

/** The synced traits every widget redraws on (see rlhfkit/labeling/widgets.py). */
const FOLLOWED_TRAITS = ["items", "progress", "history", "ack", "error", "notice", "markdown"];

/** Redraw on every change of a followed trait (and of the widget's own `extraTraits`), and every half second while
 * a judgment waits (to say it is waiting); returns the clean-up for anywidget. */
function follow(model, sender, update, extraTraits = []) {
  const traits = [...FOLLOWED_TRAITS, ...extraTraits];
  for (const name of traits) model.on(`change:${name}`, update);
  const slow = setInterval(() => sender.pending && update(), 500);
  update();
  return () => {
    clearInterval(slow);
    for (const name of traits) model.off(`change:${name}`, update);
  };
}

/**
 * Undo and edit for a widget whose draft lives in a text field (the rationale box, the demonstration editor):
 * editing an entry puts its text back in the field, Undo first cancels an open edit. `textOf(entry)` is the text
 * to restore, `focusTarget()` what gets the focus when an edit opens. Returns {undo, startEdit, cancelEdit}.
 */
function makeEditing(cursor, sender, update, field, textOf, focusTarget) {
  const cancelEdit = () => {
    cursor.editing = null;
    field.value = "";
    update();
  };
  return {
    cancelEdit,
    undo() {
      if (cursor.editing) return cancelEdit();
      sender.send({ type: "undo" });
    },
    startEdit(entry) {
      if (sender.pending) return;
      cursor.editing = entry;
      field.value = textOf(entry) || "";
      update();
      focusTarget().focus({ preventScroll: true });
    },
  };
}
