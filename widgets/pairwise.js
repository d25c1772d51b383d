// Pairwise labeler: a prompt, two responses side by side, and one decision per item.
// The Python side (rlhfkit.labeling.PairwiseLabeler) sends `items` (the current item first, then a small window of
// upcoming ones, responses already in display order) and decodes left/right to the stored candidates.
// Keys: 1 / ArrowLeft = left better, 2 / ArrowRight = right better, 3 = tie, 4 = both bad, s = skip,
// z / Backspace = undo, r = rationale box, Escape = leave the rationale box or cancel an edit.
// With `criteria` (e.g. ["helpful", "harmless"]) each is asked first, in order: 1 / 2 / 3 (or the row's buttons)
// answer the highlighted one and move to the next, ArrowUp / ArrowDown move between them; once every criterion
// has an answer the keys make the overall choice, which sends all answers together.

const CHOICE_LABELS = { left: "A better", right: "B better", tie: "Tie", both_bad: "Both bad", skip: "Skip" };
const CHOICE_KEYS = { left: "1 / ←", right: "2 / →", tie: "3", both_bad: "4", skip: "s" };
const KEY_TO_SIDE = { 1: "left", 2: "right", 3: "tie", 4: "both_bad", ArrowLeft: "left", ArrowRight: "right", s: "skip" };
const CRITERION_SIDES = ["left", "right", "tie"]; // a criterion's answer: A, B or tie
const CRITERION_LABELS = { left: "A", right: "B", tie: "Tie" };
const CRITERION_KEYS = { left: "1", right: "2", tie: "3" };

/** The per-criterion questions: one row per criterion (its name, A / B / Tie buttons showing their keys, and the
 * answer given), the highlighted row being the one the keys answer. Returns {node, answers, setCriteria(names),
 * reset(answers), answer(side), move(step), missing(), update()}. */
function makeCriteria(onChange) {
  const node = h("div", { class: "lm-criteria", hidden: true });
  const hint = h("div", { class: "lm-hint" });
  const state = { names: [], answers: {}, active: 0, rows: [] };
  const firstMissing = () => {
    const i = state.names.findIndex((name) => !(name in state.answers));
    return i < 0 ? state.names.length : i; // names.length = the overall choice
  };
  const api = {
    node,
    get answers() { return { ...state.answers }; },
    get asking() { return state.active < state.names.length; },
    setCriteria(names) {
      names = names || [];
      if (names.join("\u0000") === state.names.join("\u0000")) return;
      state.names = names;
      state.rows = names.map((name) => {
        const answer = h("span", { class: "lm-criterion-answer" });
        const buttons = CRITERION_SIDES.map((side) =>
          h("button", {
            type: "button",
            class: "lm-button lm-criterion-choice",
            "data-side": side,
            text: `${CRITERION_LABELS[side]} (${CRITERION_KEYS[side]})`,
            onclick: () => { state.active = names.indexOf(name); api.answer(side); },
          }),
        );
        const row = h("div", { class: "lm-criterion", "data-criterion": name },
          h("span", { class: "lm-criterion-name", text: name }), ...buttons, answer);
        return { name, row, answer, buttons };
      });
      node.replaceChildren(hint, ...state.rows.map((r) => r.row));
      node.hidden = !names.length;
      api.reset({});
    },
    reset(answers) {
      state.answers = {};
      for (const [name, side] of Object.entries(answers || {})) {
        if (state.names.includes(name) && CRITERION_SIDES.includes(side)) state.answers[name] = side;
      }
      state.active = firstMissing();
      api.update();
    },
    answer(side) {
      if (!api.asking) return false;
      state.answers[state.names[state.active]] = side;
      // On to the next unanswered criterion (after this one first), else to the overall choice.
      const after = state.names.findIndex((name, i) => i > state.active && !(name in state.answers));
      state.active = after >= 0 ? after : firstMissing();
      onChange();
      return true;
    },
    move(step) {
      state.active = Math.max(0, Math.min(state.names.length, state.active + step));
      onChange();
    },
    missing() { return state.names.filter((name) => !(name in state.answers)); },
    update(disabled = false) {
      state.rows.forEach(({ name, row, answer, buttons }, i) => {
        const side = state.answers[name];
        row.classList.toggle("lm-criterion-active", i === state.active);
        row.toggleAttribute("aria-current", i === state.active);
        answer.textContent = side ? `→ ${CRITERION_LABELS[side]}` : "";
        for (const b of buttons) {
          b.disabled = disabled;
          b.classList.toggle("lm-selected", b.dataset.side === side);
        }
      });
      hint.textContent = api.asking
        ? `Criterion ${state.active + 1} of ${state.names.length}: 1 A · 2 B · 3 tie (↑ / ↓ to move); then the overall choice saves all.`
        : "Now the overall choice (1 / 2 / 3 / 4) saves your answers; ↑ goes back to the criteria.";
    },
  };
  return api;
}

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
  const criteria = makeCriteria(() => update());
  let localError = ""; // said by the widget itself (an overall choice before every criterion has an answer)
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
    criteria.node,
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
      criteria.setCriteria(model.get("criteria"));

      const item = cursor.current();
      if (cursor.shows(item)) {
        localError = "";
        criteria.reset(cursor.editing ? cursor.editing.criteria : {}); // an edit starts from the answers given
        if (item) {
          const md = model.get("markdown");
          showText(prompt, item.prompt, md);
          texts.forEach((node, i) => showText(node, (item.responses || [])[i], md));
        }
      }
      // A failed judgment keeps the person's answers for the retry.
      if (acked && model.get("error") && acked.criteria) criteria.reset(acked.criteria);
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
      criteria.update(!item);
      showState(root, model, sender, status, history);
      if (localError && !model.get("error")) status.set(localError, true);
    });
  }

  function choose(side) {
    const item = cursor.current();
    if (!item || sender.pending) return;
    const fields = { side, rationale: rationale.value.trim() || null };
    if ((model.get("criteria") || []).length && side !== "skip") {
      const missing = criteria.missing();
      if (missing.length) {
        localError = `Answer every criterion first: ${missing.join(", ")}.`;
        criteria.reset(criteria.answers); // highlights the first one missing
        update();
        return;
      }
      fields.criteria = criteria.answers;
    }
    localError = "";
    if (!cursor.send(item, "choose", fields)) return;
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
    const asking = criteria.asking && cursor.current() && !sender.pending;
    if (asking && CRITERION_SIDES.includes(side)) {
      if (!event.repeat) criteria.answer(side); // the highlighted criterion, then the next
    } else if ((event.key === "ArrowUp" || event.key === "ArrowDown") && (model.get("criteria") || []).length) {
      criteria.move(event.key === "ArrowUp" ? -1 : 1);
    } else if (asking && side === "both_bad") {
      return true; // "both bad" is an overall verdict, not an answer to one criterion: ignored here
    } else if (side) {
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

  return follow(model, sender, update, ["rationale", "criteria"]);
}

export default { render };
