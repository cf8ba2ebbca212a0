// The TodoMVC app specification (tastejs/todomvc), checked on the demo in one browser context.
import assert from "node:assert/strict";
import {
	addTodos,
	e2eTest,
	editTodo,
	eventually,
	expectItems,
	expectTitles,
	item,
	newSpace,
	openApp,
	titles,
	waitReady,
} from "./harness.mjs";

async function start(device, options = {}) {
	const d = await device("device");
	const page = await d.newPage();
	await openApp(page, { space: newSpace("todomvc"), ...options });
	return page;
}

const counterText = (page) => page.locator(".todo-count").textContent();

e2eTest("starts empty: input focused, main and footer hidden", async ({ device, shot }) => {
	const page = await start(device);
	assert.equal(await page.evaluate(() => document.activeElement?.className), "new-todo");
	assert.equal(await page.locator(".new-todo").getAttribute("placeholder"), "What needs to be done?");
	assert.equal(await page.locator("header.header h1").textContent(), "todos");
	assert.equal(await page.locator("section.main").isVisible(), false);
	assert.equal(await page.locator("footer.footer").isVisible(), false);
	assert.equal(await page.locator(".todo-list li").count(), 0);
	await shot(page, "empty");
});

e2eTest("adds todos with Enter, trimmed, in order, ignoring empty input", async ({ device, shot }) => {
	const page = await start(device);
	await addTodos(page, "buy some cheese", "feed the cat");
	await expectTitles(page, ["buy some cheese", "feed the cat"]);
	assert.equal(await page.locator(".new-todo").inputValue(), "", "input is cleared");

	await addTodos(page, "   book a doctors appointment   ");
	await expectTitles(page, ["buy some cheese", "feed the cat", "book a doctors appointment"]);

	const input = page.locator(".new-todo");
	await input.fill("    ");
	await input.press("Enter");
	await input.fill("");
	await input.press("Enter");
	await page.waitForTimeout(300);
	assert.equal(await page.locator(".todo-list li").count(), 3, "blank titles are not added");
	assert.equal(await page.locator("section.main").isVisible(), true);
	assert.equal(await page.locator("footer.footer").isVisible(), true);
	await shot(page, "three-todos");
});

e2eTest("counter pluralises and wraps the number in <strong>", async ({ device }) => {
	const page = await start(device);
	await addTodos(page, "one");
	await eventually(async () => assert.equal(await counterText(page), "1 item left"));
	assert.equal(await page.locator(".todo-count strong").textContent(), "1");
	await addTodos(page, "two");
	await eventually(async () => assert.equal(await counterText(page), "2 items left"));
	await item(page, "one").locator(".toggle").check();
	await eventually(async () => assert.equal(await counterText(page), "1 item left"));
	await item(page, "two").locator(".toggle").check();
	await eventually(async () => assert.equal(await counterText(page), "0 items left"));
});

e2eTest("toggles a todo completed and back", async ({ device }) => {
	const page = await start(device);
	await addTodos(page, "buy some cheese", "feed the cat");
	await item(page, "buy some cheese").locator(".toggle").check();
	await expectItems(page, [
		{ title: "buy some cheese", completed: true },
		{ title: "feed the cat", completed: false },
	]);
	await item(page, "buy some cheese").locator(".toggle").uncheck();
	await expectItems(page, [
		{ title: "buy some cheese", completed: false },
		{ title: "feed the cat", completed: false },
	]);
});

e2eTest("toggle-all marks all complete, clears, and follows single toggles", async ({ device, shot }) => {
	const page = await start(device);
	await addTodos(page, "a", "b", "c");
	const toggleAll = page.locator("#toggle-all");
	assert.equal(await page.locator("label[for='toggle-all']").count(), 1);
	await page.locator("label[for='toggle-all']").click();
	await expectItems(page, ["a", "b", "c"].map((title) => ({ title, completed: true })));
	await eventually(async () => assert.equal(await toggleAll.isChecked(), true));
	await shot(page, "all-completed");

	await page.locator("label[for='toggle-all']").click();
	await expectItems(page, ["a", "b", "c"].map((title) => ({ title, completed: false })));
	await eventually(async () => assert.equal(await toggleAll.isChecked(), false));

	for (const t of ["a", "b", "c"]) await item(page, t).locator(".toggle").check();
	await eventually(async () => assert.equal(await toggleAll.isChecked(), true), { timeout: 3000 });
	await item(page, "b").locator(".toggle").uncheck();
	await eventually(async () => assert.equal(await toggleAll.isChecked(), false));
});

e2eTest("edits by double-click: Enter saves trimmed, blur saves, empty deletes, Escape cancels", async ({ device, shot }) => {
	const page = await start(device);
	await addTodos(page, "buy some cheese", "feed the cat", "book a doctors appointment");

	// Editing mode hides the other controls and focuses the edit field with the title.
	const li = item(page, "feed the cat");
	await li.locator("label").dblclick();
	assert.match(await li.getAttribute("class"), /\bediting\b/);
	assert.equal(await li.locator(".view").isVisible(), false);
	assert.equal(await li.locator(".edit").isVisible(), true);
	assert.equal(await li.locator(".edit").inputValue(), "feed the cat");
	assert.equal(await page.evaluate(() => document.activeElement?.className), "edit");
	await shot(page, "editing");
	await li.locator(".edit").fill("    buy some sausages    ");
	await li.locator(".edit").press("Enter");
	await expectTitles(page, ["buy some cheese", "buy some sausages", "book a doctors appointment"]);
	assert.equal(await page.locator(".todo-list li.editing").count(), 0);

	// Blur saves.
	await item(page, "buy some cheese").locator("label").dblclick();
	await page.locator(".todo-list li.editing .edit").fill("buy more cheese");
	await page.locator(".new-todo").click();
	await expectTitles(page, ["buy more cheese", "buy some sausages", "book a doctors appointment"]);

	// Escape cancels.
	await editTodo(page, "buy some sausages", "something else", "Escape");
	await expectTitles(page, ["buy more cheese", "buy some sausages", "book a doctors appointment"]);
	assert.equal(await page.locator(".todo-list li.editing").count(), 0);
	await page.waitForTimeout(200);
	await expectTitles(page, ["buy more cheese", "buy some sausages", "book a doctors appointment"]);

	// An empty title deletes the todo.
	await editTodo(page, "book a doctors appointment", "   ");
	await expectTitles(page, ["buy more cheese", "buy some sausages"]);
});

e2eTest("destroy button removes a todo", async ({ device }) => {
	const page = await start(device);
	await addTodos(page, "a", "b", "c");
	const b = item(page, "b");
	await b.hover();
	await b.locator(".destroy").click();
	await expectTitles(page, ["a", "c"]);
});

e2eTest("clear completed removes completed todos and hides when none are", async ({ device, shot }) => {
	const page = await start(device);
	await addTodos(page, "a", "b", "c");
	const clear = page.locator("button.clear-completed");
	assert.equal(await clear.isVisible(), false);
	await item(page, "b").locator(".toggle").check();
	await eventually(async () => assert.equal(await clear.isVisible(), true));
	assert.equal((await clear.textContent()).trim(), "Clear completed");
	await shot(page, "one-completed");
	await clear.click();
	await expectTitles(page, ["a", "c"]);
	await eventually(async () => assert.equal(await clear.isVisible(), false));

	// Clearing everything hides main and footer, and unchecks toggle-all.
	await page.locator("label[for='toggle-all']").click();
	await eventually(async () => assert.equal(await clear.isVisible(), true));
	await clear.click();
	await expectTitles(page, []);
	await eventually(async () => assert.equal(await page.locator("footer.footer").isVisible(), false));
	assert.equal(await page.locator("section.main").isVisible(), false);
	assert.equal(await page.locator("#toggle-all").isChecked(), false);
});

e2eTest("routes #/, #/active, #/completed filter the list and mark the selected link", async ({ device, shot }) => {
	const page = await start(device);
	await addTodos(page, "a", "b", "c");
	await item(page, "b").locator(".toggle").check();
	await expectItems(page, [
		{ title: "a", completed: false },
		{ title: "b", completed: true },
		{ title: "c", completed: false },
	]);
	const selected = () => page.locator(".filters a.selected").getAttribute("href");
	assert.equal(await selected(), "#/");

	await page.locator(".filters a[href='#/active']").click();
	await expectTitles(page, ["a", "c"]);
	assert.equal(await selected(), "#/active");
	await shot(page, "active");

	await page.locator(".filters a[href='#/completed']").click();
	await expectTitles(page, ["b"]);
	assert.equal(await selected(), "#/completed");

	// The filtered view is a live query: un-completing a todo on #/completed removes it from view.
	// (click, not uncheck: the checkbox leaves the page as soon as the query result changes)
	await item(page, "b").locator(".toggle").click();
	await expectTitles(page, []);

	await page.locator(".filters a[href='#/']").click();
	await expectTitles(page, ["a", "b", "c"]);
	assert.equal(await selected(), "#/");

	// The back button walks the routes.
	await page.goBack();
	await eventually(async () => assert.equal(await selected(), "#/completed"));
	await expectTitles(page, []);
	await page.goBack();
	await eventually(async () => assert.equal(await selected(), "#/active"));
	await expectTitles(page, ["a", "b", "c"]);

	// Adding on #/active shows the new todo there.
	await addTodos(page, "d");
	await expectTitles(page, ["a", "b", "c", "d"]);

	// A route in the address survives a reload.
	await page.reload();
	await waitReady(page);
	await expectTitles(page, ["a", "b", "c", "d"]);
	assert.equal(await selected(), "#/active");
});

e2eTest("todos, completion and edits persist across reloads", async ({ device, shot }) => {
	const page = await start(device);
	await addTodos(page, "buy some cheese", "feed the cat");
	await item(page, "feed the cat").locator(".toggle").check();
	await editTodo(page, "buy some cheese", "buy blue cheese");
	await expectItems(page, [
		{ title: "buy blue cheese", completed: false },
		{ title: "feed the cat", completed: true },
	]);
	await page.reload();
	await waitReady(page);
	await expectItems(page, [
		{ title: "buy blue cheese", completed: false },
		{ title: "feed the cat", completed: true },
	]);
	assert.equal(await counterText(page), "1 item left");
	await shot(page, "after-reload");

	// The address kept the space, so a reload opened the same list.
	assert.match(page.url(), /[?&]space=todomvc-/);
	assert.deepEqual(await titles(page), ["buy blue cheese", "feed the cat"]);
});
