// Pairwise labeler: a prompt, two responses side by side, and one decision per item.
// The Python side (rlhfkit.labeling.PairwiseLabeler) sends `items` (the current item first, then a small window of
// upcoming ones, responses already in display order) and decodes left/right to the stored candidates.
// Keys: 1 / ArrowLeft = left better, 2 / ArrowRight = right better, 3 = tie, 4 = both bad, s = skip,
// z / Backspace = undo, r = rationale box, Escape = leave the rationale box or cancel an edit.

const CHOICE_LABELS = { left: "A better", right: "B better", tie: "Tie", both_bad: "Both bad", skip: "Skip" };
const CHOICE_KEYS = { left: "1 / ←", right: "2 / →", tie: "3", both_bad: "4", skip: "s" };
const KEY_TO_SIDE = { 1: "left", 2: "right", 3: "tie", 4: "both_bad", ArrowLeft: "left", ArrowRight: "right", s: "skip" };

function render({ model, el }) {
  const root = makeRoot(el, "pairwise");
  const header = makeHeader("Which response is better?", model.get("annotator"));
  const status = makeStatus();
  const sender = makeSender(model, () => update());

  const banner = h("div", { class: "lm-edit-banner", hidden: true });
  const prompt = h("div", { class: "lm-text" });
  const texts = [h("div", { class: "lm-text" }), h("div", { class: "lm-text" })];
  const cards = ["left", "right"].map((side, i) =>
    h(
      "div",
      { class: "lm-card", "data-side": side },
      h("div", { class: "lm-card-label", text: `${i ? "B" : "A"}  (${CHOICE_KEYS[side]})` }),
      texts[i],
    ),
  );
  const choiceButtons = Object.keys(CHOICE_LABELS).map((side) =>
    h("button", {
      type: "button",
      class: `lm-button lm-choice lm-choice-${side}`,
      "data-side": side,
      text: `${CHOICE_LABELS[side]} (${CHOICE_KEYS[side]})`,
      onclick: () => choose(side),
    }),
  );
  const undoButton = h("button", { type: "button", class: "lm-button lm-undo", text: "Undo (z)", onclick: () => undo() });
  const rationale = h("input", {
    type: "text",
    class: "lm-rationale",
    placeholder: "Rationale (optional, r to type, Esc to leave)",
    "aria-label": "rationale",
  });
  const done = h("div", { class: "lm-done", text: "All items are labeled. Undo or edit below if needed." });
  const history = makeHistory((entry) => CHOICE_LABELS[entry.side] || entry.side, (entry) => startEdit(entry),
    (entry) => entry.chosen);
  const body = h(
    "div",
    { class: "lm-body" },
    h("div", { class: "lm-prompt" }, h("div", { class: "lm-card-label", text: "Prompt" }), prompt),
    h("div", { class: "lm-pair" }, ...cards),
  );
  root.append(
    header.node,
    banner,
    body,
    done,
    h("div", { class: "lm-actions" }, ...choiceButtons, undoButton),
    rationale,
    status.node,
    history.node,
  );

  const cursor = makeCursor(model, sender);

  function update() {
    keepingFocus(root, () => {
      const acked = cursor.acked();
      // A failed judgment keeps the person's rationale for the retry.
      if (acked && model.get("error") && acked.rationale && !rationale.value) rationale.value = acked.rationale;
      header.update(model.get("progress"));
      rationale.hidden = !model.get("rationale");

      const item = cursor.current();
      if (cursor.shows(item) && item) {
        const md = model.get("markdown");
        showText(prompt, item.prompt, md);
        texts.forEach((node, i) => showText(node, (item.responses || [])[i], md));
      }
      body.hidden = !item;
      done.hidden = !!item;
      // Once everything is labelled there is nothing to choose or to give a reason for (until an undo or edit).
      for (const b of choiceButtons) b.disabled = !item;
      rationale.disabled = !item;
      if (!item) rationale.value = "";
      const editing = cursor.editing;
      banner.hidden = !editing;
      if (editing) {
        const was = CHOICE_LABELS[editing.side] || editing.side;
        banner.textContent = `Editing your decision on item #${editing.item_id} (was: ${was}). Choose again, or Esc to cancel.`;
      }
      showState(root, model, sender, status, history);
    });
  }

  function choose(side) {
    const item = cursor.current();
    if (!item || sender.pending) return;
    if (!cursor.send(item, "choose", { side, rationale: rationale.value.trim() || null })) return;
    rationale.value = "";
    update();
  }

  // An edit restores the entry's rationale; the keys stay with the widget (root) to decide again.
  const { undo, startEdit, cancelEdit } = makeEditing(cursor, sender, () => update(), rationale,
    (entry) => entry.rationale, () => root);

  rationale.addEventListener("keydown", (event) => {
    // Typing belongs to the box; Escape or Enter hands the keys back to the shortcuts.
    if (event.key === "Escape" || event.key === "Enter") {
      event.preventDefault();
      root.focus({ preventScroll: true });
    }
  });

  onShortcut(root, (event) => {
    const side = KEY_TO_SIDE[event.key];
    if (side) {
      if (!event.repeat) choose(side); // a held key decides once
    } else if (event.key === "z" || event.key === "Backspace") {
      if (!event.repeat) undo();
    } else if (event.key === "r" && model.get("rationale") && !rationale.disabled) {
      rationale.focus();
    } else if (event.key === "Escape" && cursor.editing) {
      cancelEdit();
    } else {
      return false;
    }
    return true;
  });

  return follow(model, sender, update, ["rationale"]);
}

export default { render };
