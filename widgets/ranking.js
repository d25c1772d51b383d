// Ranking labeler: K responses to one prompt, put in order of preference, then submitted as one ranking.
// Keys: press the response numbers best first (the last one is implied), Enter submits, Backspace takes back the
// last pick (or undoes the previous judgment when nothing is picked), z undoes, Escape resets or cancels an edit.
// Drag and drop reorders the cards; the order top to bottom is then the ranking.
// The Python side (rlhfkit.labeling.RankingLabeler) maps display positions back to the stored candidates.

function render({ model, el }) {
  const root = makeRoot(el, "ranking");
  const header = makeHeader("Rank the responses, best first", model.get("annotator"));
  const status = makeStatus();
  const sender = makeSender(model, () => update());

  const banner = h("div", { class: "lm-edit-banner", hidden: true });
  const prompt = h("div", { class: "lm-text" });
  const list = h("ol", { class: "lm-rank-list" });
  const hint = h("div", { class: "lm-hint" });
  const submitButton = h("button", { type: "button", class: "lm-button lm-submit", text: "Submit (Enter)", onclick: () => submit() });
  const resetButton = h("button", { type: "button", class: "lm-button lm-reset", text: "Reset (Esc)", onclick: () => reset() });
  const undoButton = h("button", { type: "button", class: "lm-button lm-undo", text: "Undo (z)", onclick: () => undo() });
  const done = h("div", { class: "lm-done", text: "All items are ranked. Undo or edit below if needed." });
  const history = makeHistory((entry) => `order ${entry.order.map((i) => i + 1).join(" > ")}`, (entry) => startEdit(entry),
    (entry) => entry.chosen);
  const body = h(
    "div",
    { class: "lm-body" },
    h("div", { class: "lm-prompt" }, h("div", { class: "lm-card-label", text: "Prompt" }), prompt),
    hint,
    list,
  );
  root.append(header.node, banner, body, done, h("div", { class: "lm-actions" }, submitButton, resetButton, undoButton),
    status.node, history.node);

  const cursor = makeCursor(model, sender);
  let order = []; // display indices, top to bottom
  let placed = 0; // how many of the top entries of `order` are decided
  let implied = false; // the last one was placed automatically after K-1 picks
  let cardNodes = []; // by display index

  function buildCards(item) {
    const md = model.get("markdown");
    cardNodes = (item.responses || []).map((text, i) => {
      const content = h("div", { class: "lm-text" });
      showText(content, text, md);
      const card = h(
        "li",
        { class: "lm-card lm-rank-card", draggable: "true", "data-index": String(i) },
        h("div", { class: "lm-card-label" }, h("span", { class: "lm-rank-badge" }), h("span", { text: ` response ${i + 1}  (key ${i + 1})` })),
        content,
      );
      card.addEventListener("dragstart", (event) => {
        event.dataTransfer.setData("text/plain", String(i));
        event.dataTransfer.effectAllowed = "move";
      });
      card.addEventListener("dragover", (event) => event.preventDefault());
      card.addEventListener("drop", (event) => {
        event.preventDefault();
        const from = Number(event.dataTransfer.getData("text/plain"));
        if (Number.isInteger(from) && from !== i) moveBefore(from, i, event);
      });
      return card;
    });
  }

  function resetOrder(item) {
    order = (item ? item.responses || [] : []).map((_, i) => i);
    placed = 0;
    implied = false;
  }

  /** Drag and drop: put `from` where `to` is (after it when dropped on its lower half); the order is then whole. */
  function moveBefore(from, to, event) {
    const rect = cardNodes[to].getBoundingClientRect();
    const after = event.clientY > rect.top + rect.height / 2;
    order = order.filter((i) => i !== from);
    order.splice(order.indexOf(to) + (after ? 1 : 0), 0, from);
    placed = order.length;
    implied = false;
    update();
  }

  function pick(index) {
    if (index >= order.length || order.slice(0, placed).includes(index)) return;
    const rest = order.slice(placed).filter((i) => i !== index);
    order = [...order.slice(0, placed), index, ...rest];
    placed += 1;
    implied = placed === order.length - 1;
    if (implied) placed = order.length;
    update();
  }

  function takeBack() {
    if (placed === 0) return undo();
    placed -= implied ? 2 : 1;
    implied = false;
    order = [...order.slice(0, placed), ...order.slice(placed).sort((a, b) => a - b)];
    update();
  }

  function reset() {
    if (cursor.editing) {
      cursor.editing = null;
      cursor.shownKey = null; // redraw the pending item afresh
    } else {
      resetOrder(cursor.current());
    }
    update();
  }

  function update() {
    keepingFocus(root, () => {
      cursor.acked();
      header.update(model.get("progress"));
      const item = cursor.current();
      const editing = cursor.editing;
      if (cursor.shows(item) && item) {
        showText(prompt, item.prompt, model.get("markdown"));
        buildCards(item);
        resetOrder(item);
        if (editing) {
          order = [...editing.order];
          placed = order.length;
        }
      }
      body.hidden = !item;
      done.hidden = !!item;
      if (item) {
        list.replaceChildren(...order.map((i) => cardNodes[i]));
        order.forEach((i, position) => {
          const card = cardNodes[i];
          card.classList.toggle("lm-unplaced", position >= placed);
          card.querySelector(".lm-rank-badge").textContent = position < placed ? `#${position + 1}` : "–";
        });
        const k = order.length;
        hint.textContent = placed === k
          ? "Order complete: Enter or Submit saves it (Backspace takes back the last pick)."
          : `Press the response numbers 1–${k} best first, or drag the cards. ${placed} of ${k} placed.`;
      }
      submitButton.disabled = !item || placed !== order.length;
      resetButton.disabled = !item;
      banner.hidden = !editing;
      if (editing) banner.textContent = `Editing your ranking of item #${editing.item_id}. Submit again, or Esc to cancel.`;
      showState(root, model, sender, status, history);
    });
  }

  function submit() {
    const item = cursor.current();
    if (!item || sender.pending || placed !== order.length) return;
    if (!cursor.send(item, "rank", { order: [...order] })) return;
    update();
  }

  function undo() {
    if (cursor.editing) return reset();
    sender.send({ type: "undo" });
  }

  function startEdit(entry) {
    if (sender.pending) return;
    cursor.editing = entry;
    update();
    root.focus({ preventScroll: true });
  }

  onShortcut(root, (event) => {
    if (/^[1-9]$/.test(event.key)) {
      if (!event.repeat && cursor.current()) pick(Number(event.key) - 1);
    } else if (event.key === "Enter") {
      if (!event.repeat) submit();
    } else if (event.key === "Backspace") {
      if (!event.repeat) takeBack();
    } else if (event.key === "z") {
      if (!event.repeat) undo();
    } else if (event.key === "Escape") {
      reset();
    } else {
      return false;
    }
    return true;
  });

  return follow(model, sender, update);
}

export default { render };
