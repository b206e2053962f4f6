// Who functions run as: an unprivileged user when serve is root, serve's own user otherwise.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { UserError } from '../../runtime/core/errors.js';
import { functionUser } from '../../serve/function-user.js';

// ---
const user = suite('functionUser');

user('as root: nobody by default, read from the user database', () => {
  const nobody = functionUser(undefined, 0);
  assert.is(nobody?.name, 'nobody');
  assert.ok(nobody!.uid > 0, `uid ${nobody!.uid}`);
});

user('as root: a name, or UID[:GID]; root itself means no switch', () => {
  assert.equal(functionUser('1234:5678', 0), { name: '1234:5678', uid: 1234, gid: 5678 });
  assert.equal(functionUser('4321', 0), { name: '4321', uid: 4321, gid: 4321 });
  assert.is(functionUser('root', 0), undefined);
  assert.is(functionUser('0', 0), undefined);
});

user('as root: an unknown user is a UserError that says how to choose one', () => {
  try {
    functionUser('no-such-user-micro-fn', 0);
    assert.unreachable();
  } catch (err) {
    assert.instance(err, UserError);
    assert.match((err as Error).message, /no user no-such-user-micro-fn .* --user NAME/);
  }
});

user("as any other user: serve's own (no switch), and --user is refused", () => {
  assert.is(functionUser(undefined, 1000), undefined);
  try {
    functionUser('nobody', 1000);
    assert.unreachable();
  } catch (err) {
    assert.instance(err, UserError);
    assert.match((err as Error).message, /needs micro-fn serve to run as root/);
  }
});

user.run();
