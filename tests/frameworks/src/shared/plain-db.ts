// The plain app's database, without the harness (which imports ferrosync/observable).
import init, { Database, type Collection } from "ferrosync";
import type { Task } from "./harness";

export async function openDatabase(): Promise<{ db: Database; tasks: Collection<Task> }> {
  await init();
  const db = await Database.open({ name: "fw-plain", collections: { tasks: {} } });
  return { db, tasks: db.collection<Task>("tasks") };
}
