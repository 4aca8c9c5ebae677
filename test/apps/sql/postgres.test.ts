import { postgresSkip, startPostgres } from '../../helpers/databases';
import { SOKETI_POSTGRES_SCHEMA, describeStore, peerRow } from './store-scenarios';

describeStore({ name: 'postgres', skip: postgresSkip, start: startPostgres, peerSchema: SOKETI_POSTGRES_SCHEMA, insertPeerRow: peerRow('"'), announcesItself: true });
