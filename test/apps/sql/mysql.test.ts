import { mariadbSkip, startMariadb } from '../../helpers/databases';
import { SOKETI_MYSQL_SCHEMA, describeStore, peerRow } from './store-scenarios';

// MySQL announces nothing itself: the nodes learn of a change through the cluster's Redis.
describeStore({ name: 'mysql', skip: mariadbSkip, start: startMariadb, peerSchema: SOKETI_MYSQL_SCHEMA, insertPeerRow: peerRow('`'), announcesItself: false });
