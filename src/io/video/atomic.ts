// Temp-then-rename output handling shared by every writer: nothing appears at the destination until close()
// succeeds, and an existing destination is only replaced at that moment.

import { randomBytes } from 'node:crypto';
import { rename, rm, stat } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';

/** A hidden temp name in the destination's folder (same file system, so rename is atomic). */
export function tempPathFor(dest: string): string {
  return join(dirname(dest), `.${basename(dest)}.${randomBytes(6).toString('hex')}.partial`);
}

async function exists(p: string): Promise<boolean> {
  try {
    await stat(p);
    return true;
  } catch {
    return false;
  }
}

/**
 * Moves `temp` to `dest`. A file replaces a file atomically; a folder replacing an existing folder is swapped in
 * through a backup name that is deleted afterwards (restored if the swap fails).
 */
export async function commitTemp(temp: string, dest: string, isFolder: boolean): Promise<void> {
  if (!isFolder || !(await exists(dest))) {
    await rename(temp, dest);
    return;
  }
  const backup = `${tempPathFor(dest)}.old`;
  await rename(dest, backup);
  try {
    await rename(temp, dest);
  } catch (err) {
    await rename(backup, dest);
    throw err;
  }
  await rm(backup, { recursive: true, force: true });
}

export async function removeTemp(temp: string): Promise<void> {
  await rm(temp, { recursive: true, force: true });
}
