// Demonstration writer: shows a prompt; the person writes the response (SFT data for the pipeline's first step).
// Ctrl+Enter (or Cmd+Enter) or the button submits; Escape leaves the text box so that z undoes the last one.
// The Python side is rlhfkit.labeling.DemonstrationWriter.

function render({ model, el }) {
  const editor = h("textarea", {
    class: "lm-editor",
    rows: "8",
    placeholder: "Write the response here. Ctrl+Enter submits.",
    "aria-label": "your response",
  });
  const root = makeRoot(el, "demonstration", () => (editor.isConnected && !editor.disabled ? editor : root));
  const header = makeHeader("Write the response", model.get("annotator"));
  const status = makeStatus();
  const sender = makeSender(model, () => update());

  const banner = h("div", { class: "lm-edit-banner", hidden: true });
  const prompt = h("div", { class: "lm-text" });
  const submitButton = h("button", { type: "button", class: "lm-button lm-submit", text: "Submit (Ctrl+Enter)", onclick: () => submit() });
  const undoButton = h("button", { type: "button", class: "lm-button lm-undo", text: "Undo last (z outside the box)", onclick: () => undo() });
  const done = h("div", { class: "lm-done", text: "All prompts have a demonstration. Undo or edit below if needed." });
  const history = makeHistory((entry) => preview(entry.text, 40), (entry) => startEdit(entry));
  const body = h("div", { class: "lm-body" },
    h("div", { class: "lm-prompt" }, h("div", { class: "lm-card-label", text: "Prompt" }), prompt), editor);
  root.append(header.node, banner, body, done, h("div", { class: "lm-actions" }, submitButton, undoButton), status.node,
    history.node);

  const cursor = makeCursor(model, sender);

  function update() {
    keepingFocus(root, () => {
      const acked = cursor.acked();
      // Never lose what the person wrote: a failed submit puts the text back.
      if (acked && model.get("error") && acked.text && !editor.value) editor.value = acked.text;
      header.update(model.get("progress"));
      const item = cursor.current();
      if (cursor.shows(item) && item) showText(prompt, item.prompt, model.get("markdown"));
      body.hidden = !item;
      done.hidden = !!item;
      submitButton.disabled = !item;
      editor.disabled = !item; // nothing to write for once every prompt has its response (until an undo or edit)
      const editing = cursor.editing;
      banner.hidden = !editing;
      if (editing) banner.textContent = `Editing your response to item #${editing.item_id}. Submit again, or Esc twice to cancel.`;
      showState(root, model, sender, status, history);
    });
  }

  function submit() {
    const item = cursor.current();
    if (!item || sender.pending) return;
    const text = editor.value;
    if (!text.trim()) {
      status.set("Write a response first.", true);
      return;
    }
    if (!cursor.send(item, "submit_text", { text })) return;
    editor.value = "";
    update();
  }

  // An edit puts the response back in the editor, ready to be rewritten.
  const { undo, startEdit, cancelEdit } = makeEditing(cursor, sender, () => update(), editor,
    (entry) => entry.text, () => editor);

  editor.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) {
      event.preventDefault();
      event.stopPropagation();
      if (!event.repeat) submit();
    } else if (event.key === "Escape") {
      event.preventDefault();
      event.stopPropagation();
      root.focus({ preventScroll: true });
    } else if (event.key === "Enter" && !event.altKey) {
      // JupyterLab 4 cancels every "insertLineBreak" input inside a notebook cell (its Shift+Enter guard, which
      // ignores data-lm-suppress-shortcuts), so Enter would type nothing here: insert the line break ourselves.
      event.preventDefault();
      event.stopPropagation();
      if (!document.execCommand("insertText", false, "\n")) { // keeps the box's own undo history
        editor.setRangeText("\n", editor.selectionStart, editor.selectionEnd, "end");
      }
    }
  });

  onShortcut(root, (event) => {
    if (event.key === "z" || event.key === "Backspace") {
      if (!event.repeat) undo();
    } else if (event.key === "Enter") {
      editor.focus({ preventScroll: true }); // back to writing
    } else if (event.key === "Escape" && cursor.editing) {
      cancelEdit();
    } else {
      return false;
    }
    return true;
  });

  return follow(model, sender, update);
}

export default { render };
